"""Kafka least privilege from the network file: a SCRAM principal per agency and the gateway, and their ACLs.

The plan (who may do what on which topic, group and transactional id) is pure data built from the
network and the topic names. Applying it uses Kafka's own tools from the cached jars (`AclCommand`,
`ConfigCommand`): aiokafka 0.14's admin client has neither CreateAcls nor AlterUserScramCredentials.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path

from maillage.core.kafka_auth import KafkaAuth
from maillage.core.kafka_local import run_tool
from maillage.core.keys import write_private
from maillage.core.network import Network
from maillage.core.topics import Topics

GATEWAY_PRINCIPAL = "gateway"
DISPATCHER_PRINCIPAL = "dispatcher"
MONITOR_PRINCIPAL = "monitor"
PASSWORD_FILE = "kafka.password"
SCRAM_ITERATIONS = 8192


class AccessError(RuntimeError):
    """Kafka refused, or a Kafka tool failed, while provisioning principals or ACLs."""


class Operation(StrEnum):
    # Kafka implies DESCRIBE from READ and WRITE, so it is never granted on its own here.
    READ = "Read"
    WRITE = "Write"


class Resource(StrEnum):
    """Resource types, spelled as AclCommand's options."""

    TOPIC = "topic"
    GROUP = "group"
    TRANSACTIONAL_ID = "transactional-id"


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW ACL on a literal resource name, for principal `User:<user>`, from any host."""

    user: str
    operation: Operation
    resource: Resource
    name: str


def agency_group(topics: Topics, agency_id: str) -> str:
    return f"{topics.prefix}maillage.agency.{agency_id}"


def gateway_group(topics: Topics) -> str:
    return f"{topics.prefix}maillage.gateway"


def agency_grants(agency_id: str, topics: Topics) -> list[Grant]:
    """An agency submits events and dead letters, and reads only its own deliveries and the status topic."""
    # Idempotent producers need no IDEMPOTENT_WRITE on the cluster since Kafka 3.0 (KIP-679): WRITE
    # on a topic is enough. Status records are metadata only; each agency keeps those about its events.
    return [
        Grant(agency_id, Operation.WRITE, Resource.TOPIC, topics.submitted),
        Grant(agency_id, Operation.WRITE, Resource.TOPIC, topics.dlq),
        Grant(agency_id, Operation.READ, Resource.TOPIC, topics.deliver(agency_id)),
        Grant(agency_id, Operation.READ, Resource.TOPIC, topics.status),
        Grant(agency_id, Operation.READ, Resource.GROUP, agency_group(topics, agency_id)),
    ]


def gateway_grants(agency_ids: Sequence[str], topics: Topics, *, transactional_id: str) -> list[Grant]:
    """The gateway reads submissions and writes every delivery, status, audit record and dead letter."""
    written = [topics.status, topics.audit, topics.dlq, *(topics.deliver(a) for a in agency_ids)]
    return [
        Grant(GATEWAY_PRINCIPAL, Operation.READ, Resource.TOPIC, topics.submitted),
        Grant(GATEWAY_PRINCIPAL, Operation.READ, Resource.GROUP, gateway_group(topics)),
        *(Grant(GATEWAY_PRINCIPAL, Operation.WRITE, Resource.TOPIC, name) for name in written),
        Grant(GATEWAY_PRINCIPAL, Operation.WRITE, Resource.TRANSACTIONAL_ID, transactional_id),
    ]


def dispatcher_group(topics: Topics) -> str:
    return f"{topics.prefix}maillage.dispatcher"


def dispatcher_grants(served: Sequence[str], topics: Topics) -> list[Grant]:
    """The dispatcher reads the deliveries of the agencies it serves, submits their acknowledgements, and
    reports to operators on the status topic what became of each alert (metadata only)."""
    return [
        Grant(DISPATCHER_PRINCIPAL, Operation.WRITE, Resource.TOPIC, topics.submitted),
        Grant(DISPATCHER_PRINCIPAL, Operation.WRITE, Resource.TOPIC, topics.status),
        Grant(DISPATCHER_PRINCIPAL, Operation.WRITE, Resource.TOPIC, topics.dlq),
        Grant(DISPATCHER_PRINCIPAL, Operation.READ, Resource.GROUP, dispatcher_group(topics)),
        *(Grant(DISPATCHER_PRINCIPAL, Operation.READ, Resource.TOPIC, topics.deliver(a)) for a in served),
    ]


def monitor_grants(topics: Topics) -> list[Grant]:
    """The monitor reads the metadata topics, and replays what the gateway refused onto `submitted`."""
    return [
        *(Grant(MONITOR_PRINCIPAL, Operation.READ, Resource.TOPIC, t) for t in (topics.audit, topics.status,
                                                                              topics.dlq)),
        Grant(MONITOR_PRINCIPAL, Operation.READ, Resource.GROUP, f"{topics.prefix}maillage.monitor"),
        Grant(MONITOR_PRINCIPAL, Operation.WRITE, Resource.TOPIC, topics.submitted),
    ]


def access_plan(network: Network, topics: Topics, *, gateway_transactional_id: str) -> list[Grant]:
    agency_ids = [a.id for a in network.agencies]
    grants = [g for a in agency_ids for g in agency_grants(a, topics)]
    grants += gateway_grants(agency_ids, topics, transactional_id=gateway_transactional_id)
    if network.dispatched:
        grants += dispatcher_grants(network.dispatched, topics)
    grants += monitor_grants(topics)
    return sorted(set(grants))


def principals(network: Network) -> list[str]:
    return [*(a.id for a in network.agencies), GATEWAY_PRINCIPAL, MONITOR_PRINCIPAL,
            *([DISPATCHER_PRINCIPAL] if network.dispatched else [])]


@dataclass(frozen=True)
class AclBatch:
    """One `AclCommand --add`: it grants every user the operation on every resource listed."""

    users: tuple[str, ...]
    operation: Operation
    resources: tuple[tuple[Resource, str], ...]

    def grants(self) -> set[Grant]:
        return {Grant(u, self.operation, kind, name) for u in self.users for kind, name in self.resources}

    def arguments(self) -> list[str]:
        args = ["--add", "--operation", self.operation.value]
        args += [a for user in self.users for a in ("--allow-principal", f"User:{user}")]
        return args + [a for kind, name in self.resources for a in (f"--{kind.value}", name)]


def batches(grants: Iterable[Grant]) -> list[AclBatch]:
    """As few AclCommand runs as give exactly these grants (each run is a cross product, and a JVM start)."""
    users_of: dict[tuple[Operation, Resource, str], set[str]] = defaultdict(set)
    for g in grants:
        users_of[(g.operation, g.resource, g.name)].add(g.user)
    resources_of: dict[tuple[Operation, tuple[str, ...]], list[tuple[Resource, str]]] = defaultdict(list)
    for (operation, kind, name), users in users_of.items():
        resources_of[(operation, tuple(sorted(users)))].append((kind, name))
    return [AclBatch(users=users, operation=op, resources=tuple(sorted(res)))
            for (op, users), res in sorted(resources_of.items())]


def password_file(private_dir: Path, owner: str) -> Path:
    return private_dir / owner / PASSWORD_FILE


def ensure_password(private_dir: Path, owner: str) -> str:
    """The owner's Kafka password, created (random, file mode 0600) on first use and kept afterwards."""
    path = password_file(private_dir, owner)
    private_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(32)
    write_private(path, (password + "\n").encode())
    return password


def load_kafka_auth(private_dir: Path, owner: str) -> KafkaAuth:
    return KafkaAuth(username=owner, password=password_file(private_dir, owner).read_text().strip())


@dataclass(frozen=True)
class KafkaAdminTools:
    """Kafka's Java tools, authenticated as a super user through a 0600 `--command-config` file."""

    bootstrap: str
    command_config: Path
    admin_password: str = field(repr=False)

    async def upsert_user(self, user: KafkaAuth) -> None:
        # A properties file, not --add-config: the password stays out of the process table. The file
        # form takes the credential without the brackets that the command-line form wants.
        config = self.command_config.parent / f"{user.username}.scram.properties"
        write_private(config, f"{user.mechanism}=iterations={SCRAM_ITERATIONS},password={user.password}\n".encode())
        try:
            await self._run("kafka.admin.ConfigCommand", "--alter", "--entity-type", "users",
                            "--entity-name", user.username, "--add-config-file", str(config),
                            redact=user.password)
        finally:
            config.unlink(missing_ok=True)

    async def add_acls(self, batch: AclBatch) -> None:
        await self._run("org.apache.kafka.tools.AclCommand", *batch.arguments())

    async def _run(self, main: str, *args: str, redact: str = "") -> None:
        code, output = await run_tool(main, "--bootstrap-server", self.bootstrap,
                                      "--command-config", str(self.command_config), *args)
        if code != 0:
            # ConfigCommand echoes a credential it rejects.
            for secret in filter(None, (redact, self.admin_password)):
                output = output.replace(secret, "[redacted]")
            raise AccessError(f"{main.rsplit('.', 1)[-1]} failed ({code}): {_gist(output)}")


def _gist(output: str) -> str:
    """A Java tool's error without its stack frames and logging noise."""
    noise = ("at ", "... ", "SLF4J:")
    lines = [line for line in output.splitlines() if line.strip() and not line.lstrip().startswith(noise)]
    return "\n".join(lines[-4:])


@contextmanager
def admin_tools(bootstrap: str, admin: KafkaAuth) -> Iterator[KafkaAdminTools]:
    with tempfile.TemporaryDirectory(prefix="maillage-acl-") as work:
        command_config = Path(work) / "admin.properties"
        write_private(command_config, admin.java_client_properties().encode())
        yield KafkaAdminTools(bootstrap=bootstrap, command_config=command_config,
                              admin_password=admin.password)


async def apply_access(
    network: Network, topics: Topics, *, bootstrap: str, admin: KafkaAuth, private_dir: Path,
    gateway_transactional_id: str, parallel: int = 3,
) -> dict[str, Path]:
    """Create or update every principal's SCRAM credential and add the plan's ACLs; idempotent.

    Returns each principal's password file. ACLs that the plan no longer holds are not removed.
    """
    users = [KafkaAuth(username=p, password=ensure_password(private_dir, p)) for p in principals(network)]
    plan = batches(access_plan(network, topics, gateway_transactional_id=gateway_transactional_id))
    # Each step is a JVM start (about a second); a few at a time, as a broker on the same machine is busy too.
    gate = asyncio.Semaphore(parallel)
    with admin_tools(bootstrap, admin) as tools:
        steps: list[Callable[[], Awaitable[None]]] = [
            *(partial(tools.upsert_user, u) for u in users), *(partial(tools.add_acls, b) for b in plan)]

        async def limited(step: Callable[[], Awaitable[None]]) -> None:
            async with gate:
                await step()

        try:
            async with asyncio.TaskGroup() as group:
                for step in steps:
                    group.create_task(limited(step))
        except* AccessError as failed:
            raise AccessError("\n".join(str(e) for e in failed.exceptions)) from None
    return {u.username: password_file(private_dir, u.username) for u in users}
