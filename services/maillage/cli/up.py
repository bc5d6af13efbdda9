"""`maillage up`: a whole Pôle on one machine — local Kafka, topics, gateway, one process per agency."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from maillage.cli.acl import DISPATCHER_PRINCIPAL, GATEWAY_PRINCIPAL, MONITOR_PRINCIPAL, apply_access
from maillage.cli.kafka_cluster import LocalCluster
from maillage.cli.kafka_local import LocalKafka, ScramSetup
from maillage.core.config.network import Network
from maillage.core.config.settings import METRICS_TOKEN_FILE
from maillage.core.crypto.keys import KeyDirs, ensure_keys, ensure_secret
from maillage.core.messaging import bus
from maillage.core.messaging.kafka_auth import KafkaAuth
from maillage.core.messaging.topics import Topics
from maillage.core.storage.private import keep_private


@dataclass
class Service:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Supervisor:
    """Starts everything, and on stop() ends all of it: no orphan process is left behind."""

    network: Network
    network_file: Path
    data_dir: Path
    bootstrap: str = ""
    kafka: LocalKafka | LocalCluster | None = None
    services: list[Service] = field(default_factory=list)
    # Each service's Kafka principal and its password file, once the local broker is provisioned.
    principals: dict[str, Path] = field(default_factory=dict)

    def start_kafka(self, *, port: int | None = None, brokers: int = 1) -> str:
        """A local broker (or a cluster of `brokers` on consecutive ports) unless one was given: secure by
        default (SASL/SCRAM, ACLs from the network file), its log directory private like the rest of the data
        directory."""
        keep_private(self.data_dir)
        if self.bootstrap:
            return self.bootstrap
        sasl = ScramSetup.kept_in(self.key_dirs.private)
        if brokers > 1:
            self.kafka = LocalCluster(data_dir=self.data_dir / "kafka-cluster", sasl=sasl, size=brokers)
            self.kafka.port = port or self.kafka.port
        else:
            self.kafka = LocalKafka(data_dir=self.data_dir / "kafka", sasl=sasl)
            self.kafka.port = port or self.kafka.port
        self.kafka.start()
        self.bootstrap = self.kafka.bootstrap
        return self.bootstrap

    @property
    def kafka_pids(self) -> list[int]:
        if isinstance(self.kafka, LocalCluster):
            return self.kafka.pids
        return [self.kafka.process.pid] if self.kafka is not None and self.kafka.process is not None else []

    @property
    def admin(self) -> KafkaAuth | None:
        return self.kafka.admin_auth if self.kafka is not None else None

    def create_topics(self) -> None:
        asyncio.run(create_network_topics(self.network, bootstrap=self.bootstrap, auth=self.admin))

    def provision(self, *, gateway_transactional_id: str) -> None:
        """On the local broker: a SCRAM principal per service and the least-privilege ACLs between them."""
        if self.admin is None:
            return
        self.principals = asyncio.run(
            apply_access(
                self.network,
                Topics(prefix=self.network.kafka.topic_prefix),
                bootstrap=self.bootstrap,
                admin=self.admin,
                private_dir=self.key_dirs.private,
                gateway_transactional_id=gateway_transactional_id,
            )
        )

    def _spawn(self, name: str, port: int, *args: str, principal: str) -> None:
        env = {
            **os.environ,
            "MAILLAGE_KAFKA_BOOTSTRAP": self.bootstrap,
            "MAILLAGE_NETWORK_FILE": str(self.network_file),
            "MAILLAGE_DATA_DIR": str(self.data_dir),
        }
        if principal in self.principals:
            # A file, not the password itself: the environment of a process is readable longer than it lives.
            env |= {
                "MAILLAGE_KAFKA_USERNAME": principal,
                "MAILLAGE_KAFKA_PASSWORD_FILE": str(self.principals[principal]),
            }
            env.pop("MAILLAGE_KAFKA_PASSWORD", None)
        log = (self.data_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "maillage.cli.main", "serve", *args, "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.services.append(Service(name=name, port=port, process=process))

    def ensure_keys(self) -> list[str]:
        """Keys for the gateway and every agency that has none yet (first run)."""
        return ensure_keys(self.key_dirs, self.network.key_owners)

    @property
    def key_dirs(self) -> KeyDirs:
        return KeyDirs(private=self.data_dir / "keys" / "private", public=self.data_dir / "keys" / "public")

    def start_services(self) -> None:
        keep_private(self.data_dir)
        self.ensure_keys()
        self.scrape_token()
        self._spawn("gateway", self.network.gateway.port, "gateway", principal=GATEWAY_PRINCIPAL)
        for agency in self.network.agencies:
            self._spawn(agency.id, agency.port, "agency", agency.id, principal=agency.id)
        if self.network.dispatched:
            self._spawn("dispatcher", self.network.dispatcher.port, "dispatcher", principal=DISPATCHER_PRINCIPAL)
        self._spawn("monitor", self.network.monitor.port, "monitor", principal=MONITOR_PRINCIPAL)

    def scrape_token(self) -> Path:
        """The bearer secret of every service's /metrics, made before they start so they share it."""
        path = self.key_dirs.private / METRICS_TOKEN_FILE
        ensure_secret(path, lambda: secrets.token_urlsafe(32))
        return path

    def wait_ready(self, *, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        pending = list(self.services)
        while pending:
            for service in list(pending):
                if service.process.poll() is not None:
                    raise RuntimeError(f"{service.name} exited; see {self.data_dir / service.name}.log")
                try:
                    if httpx.get(service.url + "/readyz", timeout=1).status_code == 200:
                        pending.remove(service)
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout:.0f}s: {', '.join(s.name for s in pending)}")
            time.sleep(0.2)

    def stop(self) -> None:
        for service in self.services:
            if service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
        for service in self.services:
            try:
                service.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait()
        self.services.clear()
        if self.kafka is not None:
            self.kafka.stop()


def bus_topics(network: Network) -> list[str]:
    return Topics(prefix=network.kafka.topic_prefix).all_for([a.id for a in network.agencies])


async def create_network_topics(
    network: Network, *, bootstrap: str, auth: KafkaAuth | None, topics: Topics | None = None
) -> list[str]:
    """The network's topics, created or brought to the file's partitions, replication, replicas in sync and
    retention per kind; returns their names."""
    k = network.kafka
    configs = network.topic_configs(topics or Topics(prefix=k.topic_prefix))
    await bus.ensure_topics(
        bootstrap,
        configs,
        partitions=k.partitions,
        replication_factor=k.replication_factor,
        min_insync_replicas=k.min_insync_replicas,
        auth=auth,
        configs=configs,
    )
    return list(configs)
