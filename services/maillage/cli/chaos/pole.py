"""The Pôle a chaos run torments: `maillage up`'s supervisor on a local three-node cluster, and the faults."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import time
import tomllib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import tomli_w

from maillage.cli.chaos.checks import Fault
from maillage.cli.fuzz import LOOPBACK_URLS
from maillage.cli.kafka_local import free_port
from maillage.cli.supervision import Child, SupervisorSettings
from maillage.cli.up import Supervisor
from maillage.core.config.network import load_network
from maillage.core.config.settings import DEFAULT_NETWORK
from maillage.gateway.settings import GatewaySettings


def chaos_network(directory: Path, *, agencies: tuple[str, ...]) -> Path:
    """The demo network cut to these agencies and without on-call, on free ports and its own topic prefix: the
    faults are what is tried, and three JVMs leave two cores little room for a dozen services besides."""
    doc = tomllib.loads(DEFAULT_NETWORK.read_text())
    doc["policy"] = str(load_network(DEFAULT_NETWORK).policy)
    doc["kafka"]["topic_prefix"] = f"chaos{uuid.uuid4().hex[:8]}."
    doc["agencies"] = [a | {"port": free_port()} for a in doc["agencies"] if a["id"] in agencies]
    doc.pop("oncall", None)
    for service in ("gateway", "dispatcher", "monitor"):
        doc[service]["port"] = free_port()
    # Webhooks to the fuzzer's loopback receivers only (as tests/e2e/test_fuzz.py's network): no public address is
    # ever called and no generated host name ever resolved.
    receivers = sorted({(h.strip("[]"), 9) for h in (httpx.URL(u).host for u in LOOPBACK_URLS)})
    doc["webhooks"] = {"public": False, "allow": [{"host": host, "port": port} for host, port in receivers]}
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "network.toml"
    path.write_bytes(tomli_w.dumps(doc).encode())
    return path


def three_free_ports() -> int:
    """A port whose next two are free as well: the cluster's nodes listen on port, port + 1, port + 2."""
    for _ in range(50):
        first = free_port()
        if first < 65000 and all(_free(first + i) for i in (1, 2)):
            return first
    raise RuntimeError("no three consecutive free ports on 127.0.0.1")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@dataclass
class Pole:
    """`maillage up --brokers 3` in this process: the same supervisor restarting what is killed (from an asyncio
    task on the main thread, where children must be launched), and the faults a scenario injects."""

    supervisor: Supervisor
    rng: random.Random
    # Children the supervision leaves alone: the cluster while an outage keeps it stopped on purpose.
    paused: set[str] = field(default_factory=set)

    @classmethod
    def start(cls, data_dir: Path, *, agencies: tuple[str, ...], seed: int, gateways: int = 1) -> Pole:
        """As `maillage up --brokers 3 --database postgres --gateways N` starts it."""
        network_file = chaos_network(data_dir, agencies=agencies)
        network = load_network(network_file)
        supervisor = Supervisor(
            network=network.model_copy(update={"kafka": network.kafka.on_brokers(3)}),
            network_file=network_file,
            data_dir=data_dir,
            settings=SupervisorSettings(),
            gateways=gateways,
        )
        try:
            supervisor.start_kafka(port=three_free_ports(), brokers=3)
            supervisor.start_postgres()
            supervisor.create_topics()
            supervisor.provision(
                gateway_transactional_id=GatewaySettings(network_file=network_file).transactional_prefix
            )
            supervisor.start_services()
            supervisor.wait_ready(timeout=240)
        except BaseException:
            supervisor.stop()
            raise
        return cls(supervisor=supervisor, rng=random.Random(seed))

    def url(self, name: str) -> str:
        return next(s.url for s in self.supervisor.services if s.name == name)

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    @property
    def children(self) -> list[Child]:
        return [*self.supervisor.services, *self.supervisor.brokers, *self.supervisor.database_servers]

    def service_restarts(self) -> dict[str, int]:
        """Each service's restarts so far: a fault the services must ride out leaves these as they were."""
        return {s.name: s.restarts for s in self.supervisor.services}

    async def supervise(self, *, every: float = 0.2) -> None:
        """What `maillage up` does after start-up, until cancelled: restart, with backoff, whatever exits."""
        backoff = self.supervisor.settings.backoff
        while True:
            await asyncio.sleep(every)
            for child in self.children:
                if child.name not in self.paused:
                    child.check(backoff=backoff, now=time.monotonic())

    async def kill(self, name: str, *, wait_running: float = 120.0) -> Fault:
        """SIGKILL this child once it runs (a kill due while the last one's restart is pending waits for it)."""
        child = self.child(name)
        deadline = time.monotonic() + wait_running
        while not child.running:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not running again {wait_running:.0f}s after its last kill")
            await asyncio.sleep(0.1)
        began = datetime.now(UTC)
        _signal_group(child, signal.SIGKILL)
        return Fault(what=f"SIGKILL {name}", began=began, ended=began)

    async def kill_a_broker(self) -> Fault:
        return await self.kill(self.rng.choice(self.supervisor.brokers).name)

    async def stop_cluster(self) -> datetime:
        """Every node stopped (SIGTERM, SIGKILL after 30 s), all at once, and kept stopped until `start_cluster`:
        stopped one by one, the last ones would wait for a quorum that is gone."""
        brokers = self.supervisor.brokers
        self.paused |= {b.name for b in brokers}
        began = datetime.now(UTC)
        for broker in brokers:
            _signal_group(broker, signal.SIGTERM)
        await asyncio.to_thread(_reap, brokers, seconds=30)
        return began

    def start_cluster(self) -> datetime:
        for broker in self.supervisor.brokers:
            broker.launch(now=time.monotonic())
            self.paused.discard(broker.name)
        return datetime.now(UTC)

    async def stop_postgres(self) -> datetime:
        """A fast shutdown (SIGINT to the postmaster: clients disconnected, nothing lost), kept stopped until
        `start_postgres`; SIGKILL after 30 s."""
        server = self.child("postgres")
        self.paused.add(server.name)
        began = datetime.now(UTC)
        if server.process is not None and server.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(server.process.pid, signal.SIGINT)
        await asyncio.to_thread(_reap, [server], seconds=30)
        return began

    async def start_postgres(self) -> datetime:
        server = self.child("postgres")
        server.launch(now=time.monotonic())
        assert self.supervisor.postgres is not None
        await asyncio.to_thread(self.supervisor.postgres.wait_ready)
        self.paused.discard(server.name)
        return datetime.now(UTC)

    def stop(self) -> list[str]:
        self.paused.clear()
        return self.supervisor.stop()


def _signal_group(child: Child, signum: int) -> None:
    if child.process is not None and child.process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.process.pid, signum)


def _reap(children: list[Child], *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for child in children:
        if child.process is None:
            continue
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(child, signal.SIGKILL)
            child.process.wait()
