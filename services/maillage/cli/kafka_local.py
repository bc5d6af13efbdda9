"""A local single-node Apache Kafka broker in KRaft mode, fetched by Maven and run by us."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import os
import resource
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from maillage.core.crypto.keys import ensure_secret
from maillage.core.crypto.network_ca import TlsDirs
from maillage.core.messaging.kafka_auth import SCRAM_MECHANISM, KafkaAuth, client_kwargs, scram_jaas_config

KAFKA_VERSION = "4.1.1"
_KAFKA_FILES = resources.files("maillage.cli.kafka")
POM = Path(str(_KAFKA_FILES.joinpath("pom.xml")))
LOG4J_CONFIG = Path(str(_KAFKA_FILES.joinpath("log4j2.properties")))
LOG4J_CONSOLE = Path(str(_KAFKA_FILES.joinpath("log4j2-console.properties")))


class KafkaUnavailable(RuntimeError):
    """The local broker could not be fetched or did not start."""


class KafkaExitedEarly(KafkaUnavailable):
    """The broker's process ended before it answered."""


def cache_dir() -> Path:
    """One folder per Kafka version and dependency list: a changed pom fetches afresh."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    pom_digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:8]
    return Path(base) / "maillage" / f"kafka-{KAFKA_VERSION}-{pom_digest}"


def ensure_jars() -> Path:
    """Fetch the broker's jars with Maven once; later calls reuse the cache."""
    libs = cache_dir() / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    if shutil.which("mvn") is None:
        raise KafkaUnavailable("Maven (mvn) is needed to fetch Apache Kafka's jars")
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent if libs.parent.exists() else None))
    cmd = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
        f"-Dkafka.version={KAFKA_VERSION}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise KafkaUnavailable(f"Maven could not fetch Kafka {KAFKA_VERSION}:\n{result.stdout[-2000:]}")
    libs.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(libs, ignore_errors=True)
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the jars from another user (an image's service user)
    staging.rename(libs)
    marker.touch()
    return libs


_HANDED_OUT: set[int] = set()
_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_ports() -> range:
    """The ports the kernel gives outgoing connections (Linux's default when it cannot be read)."""
    try:
        low, high = (int(n) for n in _EPHEMERAL.read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def free_port() -> int:
    """A port free now on 127.0.0.1 for a server to listen on, outside the kernel's ephemeral range, and never one
    this process was already given.

    Outside the range: a client reconnecting to a stopped server on a loopback port in that range may be given
    that very port as its own source and connect to itself (TCP simultaneous open) — the server, started again,
    then cannot bind (a broker of a stopped cluster was lost that way). Never twice: two services of one network
    given the same port would have one answer for both."""
    ephemeral = ephemeral_ports()
    candidates = [p for p in range(10_000, 65_536) if p not in ephemeral] or list(range(10_000, 65_536))
    while True:
        port = secrets.choice(candidates)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port


def _listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


def jmx_options(port: int) -> list[str]:
    """A JVM's JMX served on 127.0.0.1:`port` only (registry and objects on the one port), unauthenticated."""
    return [
        "-Dcom.sun.management.jmxremote",
        f"-Dcom.sun.management.jmxremote.port={port}",
        f"-Dcom.sun.management.jmxremote.rmi.port={port}",
        "-Dcom.sun.management.jmxremote.host=127.0.0.1",
        "-Djava.rmi.server.hostname=127.0.0.1",
        "-Dcom.sun.management.jmxremote.local.only=true",
        "-Dcom.sun.management.jmxremote.authenticate=false",
        "-Dcom.sun.management.jmxremote.ssl=false",
    ]


def new_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


ADMIN_PASSWORD_FILE = "kafka-admin.password"


def _admin_identity() -> KafkaAuth:
    return KafkaAuth(username="admin", password=secrets.token_urlsafe(32))


@dataclass(frozen=True)
class ScramSetup:
    """Secure mode: clients authenticate with SCRAM-SHA-512 and are authorised by ACLs; `admin` is the only
    super user, on the client listener and on the controller's (SASL/PLAIN there: SCRAM credentials live
    in the metadata log the controller serves, so they cannot guard the controller itself).

    The password lives in this object, the broker's 0600 config and, for a broker that outlives one run
    (`maillage up`), a 0600 file beside the private keys; never on a command line.
    """

    admin: KafkaAuth = field(default_factory=_admin_identity)
    iterations: int = 8192
    # Listeners over TLS (SASL_SSL, the controllers' too): across machines. None: SASL_PLAINTEXT, loopback.
    tls: BrokerTls | None = None

    @classmethod
    def kept_in(cls, private_dir: Path) -> ScramSetup:
        """The same admin password on every start: the broker's metadata already holds its credential."""
        password = ensure_secret(private_dir / ADMIN_PASSWORD_FILE, lambda: secrets.token_urlsafe(32))
        return cls(admin=KafkaAuth(username="admin", password=password))

    @property
    def client_auth(self) -> KafkaAuth:
        """The super user as a client presents it: over TLS, trusting the network CA, when the listeners are."""
        if self.tls is None:
            return self.admin
        return dataclasses.replace(self.admin, tls=True, ca_file=self.tls.ca_file)

    def format_arguments(self) -> list[str]:
        # The salted form keeps the password itself out of the process table while StorageTool runs.
        salt = secrets.token_bytes(32)
        salted = hashlib.pbkdf2_hmac("sha512", self.admin.password.encode(), salt, self.iterations)
        b64 = base64.b64encode
        return [
            "--add-scram",
            f"{SCRAM_MECHANISM}=[name={self.admin.username},iterations={self.iterations},"
            f'salt="{b64(salt).decode()}",saltedpassword="{b64(salted).decode()}"]',
        ]

    def server_properties(self, *, port: int, controller_port: int, host: str = "127.0.0.1") -> dict[str, str]:
        name, password = self.admin.username, self.admin.password
        plain = (
            f'org.apache.kafka.common.security.plain.PlainLoginModule required username="{name}" '
            f'password="{password}" user_{name}="{password}";'
        )
        protocol = "SASL_SSL" if self.tls is not None else "SASL_PLAINTEXT"
        return {
            "listeners": f"{protocol}://{host}:{port},CONTROLLER://{host}:{controller_port}",
            "advertised.listeners": f"{protocol}://{host}:{port}",
            "inter.broker.listener.name": protocol,
            "listener.security.protocol.map": f"{protocol}:{protocol},CONTROLLER:{protocol}",
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
            f"listener.name.{protocol.lower()}.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": scram_jaas_config(
                name, password
            ),
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": plain,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": self.admin.principal,
            **(self.tls.server_properties() if self.tls is not None else {}),
        }


@dataclass(frozen=True)
class BrokerTls:
    """A broker's certificate and key (a PKCS#12 key store and its password file, from `maillage keys init`)
    and the network CA it checks its peers against."""

    key_store: Path
    password_file: Path
    ca_file: Path

    @classmethod
    def issued(cls, private_dir: Path, public_dir: Path, name: str) -> BrokerTls:
        """The files `maillage keys init` wrote for broker `name` (kafka-1, …)."""
        tls = TlsDirs.under(private_dir, public_dir)
        return cls(key_store=tls.key_store(name), password_file=tls.key_store_password(name), ca_file=tls.ca_cert)

    def server_properties(self) -> dict[str, str]:
        password = self.password_file.read_text().strip()
        return {
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(self.key_store),
            "ssl.keystore.password": password,
            "ssl.key.password": password,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file),
            "ssl.endpoint.identification.algorithm": "https",
        }


@dataclass(frozen=True)
class Quorum:
    """Where a node sits in a KRaft cluster of combined broker+controller nodes; the default is a lone node."""

    node_id: int = 1
    voters: str = ""  # "1@127.0.0.1:port,2@…": every controller of the cluster; empty: this node alone
    cluster_id: str = ""  # the same for every node of a cluster; empty: a new one at the first start

    @property
    def size(self) -> int:
        return len(self.voters.split(",")) if self.voters else 1


def _server_properties(
    *,
    data_dir: Path,
    port: int,
    controller_port: int,
    sasl: ScramSetup | None,
    quorum: Quorum = Quorum(),
    host: str = "127.0.0.1",
) -> str:
    # Kafka's own topics (consumer offsets, transactions) are replicated like ours: on three nodes, one may
    # stop without a group or a transaction coordinator going with it.
    replicas, min_isr = quorum.size, max(1, quorum.size - 1)
    props = {
        "process.roles": "broker,controller",
        "node.id": str(quorum.node_id),
        "controller.quorum.voters": quorum.voters or f"{quorum.node_id}@{host}:{controller_port}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir / "logs"),
        "num.partitions": "3",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": str(replicas),
        "offsets.topic.num.partitions": "5",
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": str(min_isr),
        "transaction.state.log.num.partitions": "5",
        "group.initial.rebalance.delay.ms": "0",
        "log.flush.interval.messages": "9223372036854775807",
        "share.coordinator.state.topic.replication.factor": str(replicas),
        "share.coordinator.state.topic.min.isr": str(min_isr),
    }
    if sasl is not None:
        props |= sasl.server_properties(port=port, controller_port=controller_port, host=host)
    return "".join(f"{k}={v}\n" for k, v in props.items())


@dataclass
class LocalKafka:
    """One broker process; `start()` formats its storage, launches it and waits until it answers."""

    data_dir: Path
    heap: str = "768m"
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    sasl: ScramSetup | None = None
    quorum: Quorum = Quorum()
    # The name or address the node listens and is reached at (its certificate's, over TLS).
    host: str = "127.0.0.1"
    # Where Kafka logs: a file in data_dir, or (LOG4J_CONSOLE) standard output.
    log_config: Path = LOG4J_CONFIG
    process: subprocess.Popen[bytes] | None = None
    # How the broker's process is started: `maillage up` passes its supervisor's (dies with its parent).
    popen: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen
    # JMX on this loopback port, without authentication (the bench reads the broker's request metrics): only
    # for a broker of the bench, never one that holds anyone's data.
    jmx_port: int | None = None
    # The JVM's optimising compiler (C2). A broker started for a test run, a benchmark or `maillage up` lives
    # minutes, on a machine whose cores it shares with every service: C2 compiled for minutes on end there,
    # 0.2 to 0.4 of a core (`maillage bench --profile`: 19 of the broker's 35 ms of CPU per referral at 20/s,
    # still 11 after 90 s of warm-up), so it runs on the quick compiler (C1) alone, whose code is ready within
    # seconds. A broker meant to run for weeks (`maillage broker`, the Compose cluster) keeps C2: once warm,
    # its code costs less per request (9.5 against C1's 16 ms of CPU per referral at 20/s).
    optimising_compiler: bool = False

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def admin_auth(self) -> KafkaAuth | None:
        """The super user's identity in secure mode; `None` on the plaintext broker."""
        return self.sasl.client_auth if self.sasl is not None else None

    def _java(self, main: str, *args: str) -> list[str]:
        libs = ensure_jars()
        return [
            "java",
            f"-Xmx{self.heap}",
            "-Xms256m",
            "-XX:+UseG1GC",
            *([] if self.optimising_compiler else ["-XX:TieredStopAtLevel=1"]),
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log_config}",
            f"-Dkafka.logs.dir={self.data_dir}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def start(self, *, timeout: float = 90.0, attempts: int = 3) -> None:
        """Start the broker; a port taken between choosing it and binding it means new ports, not failure."""
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(timeout)
                return
            except KafkaUnavailable:
                out = self.data_dir / "broker.out"
                bind_failed = out.exists() and "BindException" in out.read_text(errors="replace")
                if not bind_failed or attempt == attempts:
                    raise
                self.port, self.controller_port = free_port(), free_port()

    def _start_once(self, timeout: float) -> None:
        self.prepare()
        self.launch(append=False)
        asyncio.run(self.wait_until_ready(timeout))

    def prepare(self) -> None:
        """Write the config and format the storage on the first start. Then `launch` starts the process, not
        waiting for it: the nodes of a cluster answer only once a majority of them is up."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "server.properties"
        config.touch(mode=0o600)
        config.chmod(0o600)  # in secure mode it holds the admin's password
        config.write_text(
            _server_properties(
                data_dir=self.data_dir,
                port=self.port,
                controller_port=self.controller_port,
                sasl=self.sasl,
                quorum=self.quorum,
                host=self.host,
            )
        )
        if not (self.data_dir / "logs" / "meta.properties").exists():
            self._format(config)

    def java_command(self) -> list[str]:
        """The broker's command line, on the storage and config `prepare` wrote."""
        command = self._java("kafka.Kafka", str(self.data_dir / "server.properties"))
        if self.jmx_port is not None:
            at = command.index("-cp")
            command[at:at] = jmx_options(self.jmx_port)
        return command

    def launch(self, *, append: bool = True) -> subprocess.Popen[bytes]:
        """Start the broker's process on its formatted storage without waiting for it (a restart, too)."""
        enough_open_files()
        options: dict[str, Any] = {"stderr": subprocess.STDOUT, "start_new_session": True}
        with (self.data_dir / "broker.out").open("ab" if append else "wb") as log:
            self.process = self.popen(self.java_command(), stdout=log, **options)
        return self.process

    def _format(self, config: Path) -> None:
        scram = self.sasl.format_arguments() if self.sasl is not None else []
        cluster_id = self.quorum.cluster_id or new_cluster_id()
        fmt = subprocess.run(
            # `--cluster-id=` form: a base64 id may start with "-", which a separate argument would not survive.
            self._java("kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(config), *scram),
            capture_output=True,
            text=True,
            check=False,
        )
        if fmt.returncode != 0:
            raise KafkaUnavailable(f"formatting Kafka storage failed:\n{fmt.stdout}{fmt.stderr}")

    async def wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                tail = (self.data_dir / "broker.out").read_text(errors="replace")[-1500:]
                raise KafkaExitedEarly(
                    f"Kafka exited early ({self.data_dir / 'broker.out'}):\n{tail}{self.last_error()}"
                )
            if not _listening(self.port, self.host):
                await asyncio.sleep(0.2)
                continue
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap, request_timeout_ms=2000, **client_kwargs(self.admin_auth)
            )
            try:
                await admin.start()
                await admin.describe_cluster()
                return
            except Exception:
                await asyncio.sleep(0.3)
            finally:
                await admin.close()
        self.stop()
        raise KafkaUnavailable(f"Kafka did not answer within {timeout:.0f}s")

    def last_error(self) -> str:
        """The broker's last ERROR line, if its log has one: why it stopped, for the message that says so."""
        log = self.data_dir / "server.log"
        errors = (
            [line for line in log.read_text(errors="replace").splitlines() if " ERROR " in line] if log.exists() else []
        )
        return f"\nlast error in {log}: {errors[-1]}" if errors else ""

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# A broker keeps a log, an offset index and a time index open for each partition: a test session's topics
# (some 150 partitions a test, under its own prefix) passed 20,000 files, the usual limit, and the broker
# stopped accepting connections ("Too many open files").
OPEN_FILES = 262_144


def enough_open_files() -> None:
    """Raise this process's open-file limit (the broker inherits it): to OPEN_FILES where allowed (root), else
    the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < OPEN_FILES:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))
            return
        except (ValueError, OSError):
            pass  # not allowed to raise the hard limit: take what it allows
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
