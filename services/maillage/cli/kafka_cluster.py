"""A local KRaft cluster of three (or more) nodes, each broker and controller at once, run by us.

Combined nodes rather than three controllers beside three brokers: six JVMs on a two-core machine would
start in twice the time and memory, and three voters tolerate one node lost either way — the fault the
cluster is here to survive. Production's compose file runs the same combined shape.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from maillage.cli.kafka_local import (
    KafkaExitedEarly,
    KafkaUnavailable,
    LocalKafka,
    Quorum,
    ScramSetup,
    ensure_jars,
    free_port,
    new_cluster_id,
)
from maillage.core.messaging.kafka_auth import KafkaAuth, client_kwargs

CLUSTER_ID_FILE = "cluster.id"
EARLY_EXIT_RELAUNCHES = 2
log = logging.getLogger("maillage.up")


@dataclass
class LocalCluster:
    """`size` nodes on ports `port`, `port + 1`, …; `start()` formats, launches and waits for all of them."""

    data_dir: Path
    sasl: ScramSetup
    port: int = 19092
    size: int = 3
    heap: str = "512m"
    nodes: list[LocalKafka] = field(default_factory=list)
    popen: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen

    @property
    def bootstrap(self) -> str:
        """Every node's address: a client that finds one stopped asks the next."""
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def admin_auth(self) -> KafkaAuth:
        return self.sasl.client_auth

    @property
    def pids(self) -> list[int]:
        return [node.process.pid for node in self.nodes if node.process is not None]

    def start(self, *, timeout: float = 180.0) -> None:
        ensure_jars()  # once, before three threads would each look for them
        controller_ports = [free_port() for _ in range(self.size)]
        voters = ",".join(f"{i}@127.0.0.1:{p}" for i, p in enumerate(controller_ports, start=1))
        cluster_id = self._cluster_id()
        self.nodes = [
            LocalKafka(
                data_dir=self.data_dir / f"node-{i}",
                heap=self.heap,
                popen=self.popen,
                port=self.port + i - 1,
                controller_port=controller_ports[i - 1],
                sasl=self.sasl,
                quorum=Quorum(node_id=i, voters=voters, cluster_id=cluster_id),
            )
            for i in range(1, self.size + 1)
        ]
        try:
            # Formatting is a JVM start each: side by side, not one after the other.
            with ThreadPoolExecutor(self.size) as pool:
                list(pool.map(LocalKafka.prepare, self.nodes))
            for node in self.nodes:
                node.launch(append=False)
            asyncio.run(self._wait_until_ready(timeout))
        except BaseException:
            self.stop()
            raise

    def _cluster_id(self) -> str:
        """One id for every node, kept: a node restarted later must join the cluster its storage belongs to."""
        path = self.data_dir / CLUSTER_ID_FILE
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(new_cluster_id() + "\n")
        return path.read_text().strip()

    async def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        await asyncio.gather(*(self._node_ready(node, deadline) for node in self.nodes))
        # Each node answers once it is up; topics with one replica per node need every one registered.
        while time.monotonic() < deadline:
            if len(await self.registered()) == self.size:
                return
            await asyncio.sleep(0.3)
        raise KafkaUnavailable(f"not every broker of the cluster registered within {timeout:.0f}s")

    async def _node_ready(self, node: LocalKafka, deadline: float) -> None:
        """A node that exits while its peers are still starting is launched again on the same storage, as the
        supervisor would later: a voter's first election can fail on a loaded machine. Each try is logged in
        its broker.out and server.log; the last failure is the one reported."""
        for attempt in range(1, EARLY_EXIT_RELAUNCHES + 2):
            try:
                await node.wait_until_ready(max(1.0, deadline - time.monotonic()))
                return
            except KafkaExitedEarly as exc:
                if attempt > EARLY_EXIT_RELAUNCHES or time.monotonic() >= deadline:
                    raise
                log.warning("Kafka node %s exited while starting; launched again. %s", node.quorum.node_id, exc)
                await asyncio.sleep(1.0)
                node.launch()

    async def registered(self) -> list[object]:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap, request_timeout_ms=5000, **client_kwargs(self.admin_auth)
        )
        await admin.start()
        try:
            brokers: list[object] = (await admin.describe_cluster())["brokers"]
            return brokers
        finally:
            await admin.close()

    def stop(self) -> None:
        """Every node at once: stopped one by one, the last ones would wait for a quorum that is gone."""
        running = [node.process for node in self.nodes if node.process is not None and node.process.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + 30
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for node in self.nodes:
            node.process = None
