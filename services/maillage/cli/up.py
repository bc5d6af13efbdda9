"""`maillage up`: a whole Pôle on one machine — local Kafka, topics, gateway, one process per agency — kept running."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

from maillage.cli.acl import DISPATCHER_PRINCIPAL, GATEWAY_PRINCIPAL, MONITOR_PRINCIPAL, apply_access
from maillage.cli.kafka_cluster import LocalCluster
from maillage.cli.kafka_local import LocalKafka, ScramSetup, free_port
from maillage.cli.postgres_local import LocalPostgres, server_dir
from maillage.cli.supervision import Child, SupervisorSettings, launch, stop_in_order, supervise
from maillage.core.config.network import Network
from maillage.core.config.settings import METRICS_TOKEN_FILE
from maillage.core.crypto.keys import KeyDirs, ensure_keys, ensure_secret
from maillage.core.messaging import bus
from maillage.core.messaging.kafka_auth import KafkaAuth
from maillage.core.messaging.topics import Topics
from maillage.core.storage.private import keep_private


@dataclass(kw_only=True)
class Service(Child):
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Supervisor:
    """Starts everything, restarts what crashes (`supervise`), and on stop() ends all of it before the
    shutdown deadline: no orphan process is left behind."""

    network: Network
    network_file: Path
    data_dir: Path
    bootstrap: str = ""
    kafka: LocalKafka | LocalCluster | None = None
    brokers: list[Child] = field(default_factory=list)  # one per node, restarted like the services
    services: list[Service] = field(default_factory=list)
    settings: SupervisorSettings = field(default_factory=SupervisorSettings)
    stop_requested: bool = False
    supervising: bool = False
    # Each service's Kafka principal and its password file, once the local broker is provisioned.
    principals: dict[str, Path] = field(default_factory=dict)
    # With `--database postgres`: the server (a child stopped with the brokers) and the password file services read.
    postgres: LocalPostgres | None = None
    database_servers: list[Child] = field(default_factory=list)
    passfile: Path | None = None
    gateways: int = 1  # gateway processes sharing the submitted topic's partitions (and one database)

    def start_kafka(self, *, port: int | None = None, brokers: int = 1) -> str:
        """A local broker (or a cluster of `brokers` on consecutive ports) unless one was given: secure by
        default (SASL/SCRAM, ACLs from the network file), its log directory private like the rest of the data
        directory."""
        keep_private(self.data_dir)
        if self.bootstrap:
            return self.bootstrap
        sasl = ScramSetup.kept_in(self.key_dirs.private)
        if brokers > 1:
            self.kafka = LocalCluster(data_dir=self.data_dir / "kafka-cluster", sasl=sasl, size=brokers, popen=launch)
        else:
            self.kafka = LocalKafka(data_dir=self.data_dir / "kafka", sasl=sasl, popen=launch)
        self.kafka.port = port or self.kafka.port
        self.kafka.start()
        # Each node restarted on its own ports and storage; the services reconnect by themselves meanwhile.
        nodes = self.kafka.nodes if isinstance(self.kafka, LocalCluster) else [self.kafka]
        names = [f"kafka-{i}" for i in range(1, len(nodes) + 1)] if len(nodes) > 1 else ["kafka"]
        now = time.monotonic()
        self.brokers = [
            Child(name=name, start=node.launch, process=node.process, started_at=now)
            for name, node in zip(names, nodes, strict=True)
        ]
        self.bootstrap = self.kafka.bootstrap
        return self.bootstrap

    def start_postgres(self) -> None:
        """A PostgreSQL server under the data directory, supervised like a broker, and one database per service;
        its superuser's password kept in the private keys (the cluster is kept across runs)."""
        keep_private(self.data_dir)
        secret = self.key_dirs.private / "postgres.password"
        ensure_secret(secret, lambda: secrets.token_urlsafe(24))
        server = LocalPostgres(data_dir=server_dir(self.data_dir), password=secret.read_text().strip())
        self.postgres = server
        child = Child(name="postgres", start=lambda: server.launch(launch))
        child.launch(now=time.monotonic())
        self.database_servers = [child]
        server.wait_ready()
        for name in self.service_names:
            server.ensure_database(database_name(name))
        self.passfile = server.passfile(self.key_dirs.private / "postgres.pgpass")

    @property
    def service_names(self) -> list[str]:
        dispatcher = ["dispatcher"] if self.network.dispatched else []
        return ["gateway", *(a.id for a in self.network.agencies), *dispatcher, "monitor"]

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
        if self.postgres is not None and self.passfile is not None:
            # The URL without the password: the server's password is in the file libpq's PGPASSFILE names.
            env |= {
                "MAILLAGE_DATABASE_URL": self.postgres.url_without_password(database_name(name)),
                "PGPASSFILE": str(self.passfile),
            }
        command = [sys.executable, "-m", "maillage.cli.main", "serve", *args, "--port", str(port)]
        log = self.data_dir / f"{name}.log"

        def start() -> subprocess.Popen[bytes]:
            with log.open("ab") as out:
                return launch(command, env=env, stdout=out, stderr=subprocess.STDOUT)

        service = Service(name=name, port=port, start=start)
        service.launch(now=time.monotonic())
        self.services.append(service)

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
        for name, port in self.gateway_ports():
            self._spawn(name, port, "gateway", principal=GATEWAY_PRINCIPAL)
        for agency in self.network.agencies:
            self._spawn(agency.id, agency.port, "agency", agency.id, principal=agency.id)
        if self.network.dispatched:
            self._spawn("dispatcher", self.network.dispatcher.port, "dispatcher", principal=DISPATCHER_PRINCIPAL)
        self._spawn("monitor", self.network.monitor.port, "monitor", principal=MONITOR_PRINCIPAL)

    def gateway_ports(self) -> list[tuple[str, int]]:
        """The first gateway on the network file's port, which operators' commands use (every gateway answers
        for the whole audit chain: they share one database); the others on free ports, kept across restarts.
        Agencies never call a gateway: they meet it on Kafka."""
        extra = [(f"gateway-{i}", free_port()) for i in range(2, self.gateways + 1)]
        return [("gateway", self.network.gateway.port), *extra]

    def scrape_token(self) -> Path:
        """The bearer secret of every service's /metrics, made before they start so they share it."""
        path = self.key_dirs.private / METRICS_TOKEN_FILE
        ensure_secret(path, lambda: secrets.token_urlsafe(32))
        return path

    def wait_ready(self, *, timeout: float = 120.0) -> None:
        """Every service answering /readyz; one that exits meanwhile is restarted as `supervise` would (a
        credential the broker has not propagated yet), one never ready within `timeout` stops `up`."""
        deadline = time.monotonic() + timeout
        pending = list(self.services)
        while pending:
            for service in list(pending):
                service.check(backoff=self.settings.backoff, now=time.monotonic())
                if service.running and _ready(service):
                    pending.remove(service)
            if time.monotonic() > deadline:
                names = ", ".join(s.name for s in pending)
                raise RuntimeError(f"not ready after {timeout:.0f}s: {names}; see their logs in {self.data_dir}")
            time.sleep(0.2)

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        """SIGINT, SIGTERM, SIGHUP: stop. While starting, at once (as Ctrl-C would); once running, at the
        supervisor's next look, so that no restart is half done; a second signal changes nothing."""
        first = not self.stop_requested
        self.stop_requested = True
        if first and not self.supervising:
            raise KeyboardInterrupt

    def supervise(self) -> None:
        """Until a stop is requested: restart, with backoff, whatever exits."""
        self.supervising = True
        children: list[Child] = [*self.services, *self.brokers, *self.database_servers]
        supervise(children, backoff=self.settings.backoff, stopped=lambda: self.stop_requested)

    def stop(self) -> list[str]:
        """The services first (they flush to the broker and close their connections), then the brokers and
        PostgreSQL; SIGKILL to whatever is left at the deadline. Returns the names of those that had to be killed."""
        self.stop_requested = True
        if not self.brokers and self.kafka is not None:
            self.kafka.stop()  # interrupted while it started: no child to stop in order yet
        servers = [*self.brokers, *self.database_servers]
        waves: list[list[Child]] = [list(self.services), *([servers] if servers else [])]
        killed = stop_in_order(waves, seconds=self.settings.shutdown_seconds)
        self.services.clear()
        self.brokers.clear()
        self.database_servers.clear()
        return killed


def database_name(service: str) -> str:
    """Each service's own database on the local PostgreSQL server."""
    return f"maillage_{service}"


def _ready(service: Service) -> bool:
    try:
        return httpx.get(service.url + "/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


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
