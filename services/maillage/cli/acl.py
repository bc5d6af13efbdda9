"""Kafka least privilege from the network file: a SCRAM principal per agency and the gateway, and their ACLs.

The plan (who may do what on which topic, group and transactional id) is pure data built from the
network and the topic names. Applying it takes two Kafka requests, AlterUserScramCredentials and
CreateAcls, sent through aiokafka's protocol layer: its admin client has neither call, and Kafka's own
Java tools cost a JVM start (about a second) per principal and per ACL batch — some forty for the demo.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import CreateAclsRequest_v1
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import CompactArray, CompactBytes, CompactString, Int8, Int16, Int32, Schema, TaggedFields

from maillage.core.config.network import Network
from maillage.core.crypto.keys import write_private
from maillage.core.messaging.kafka_auth import KafkaAuth, client_kwargs
from maillage.core.messaging.topics import Topics

GATEWAY_PRINCIPAL = "gateway"
DISPATCHER_PRINCIPAL = "dispatcher"
MONITOR_PRINCIPAL = "monitor"
PASSWORD_FILE = "kafka.password"
SCRAM_ITERATIONS = 8192


class AccessError(RuntimeError):
    """Kafka refused, or a Kafka tool failed, while provisioning principals or ACLs."""


class Operation(StrEnum):
    # Kafka implies DESCRIBE from READ and WRITE; it is granted alone only where the monitor reads lag.
    READ = "Read"
    WRITE = "Write"
    DESCRIBE = "Describe"


class Resource(StrEnum):
    """Resource types, spelled as AclCommand's options."""

    TOPIC = "topic"
    GROUP = "group"
    TRANSACTIONAL_ID = "transactional-id"


class Pattern(StrEnum):
    """How a grant's name matches: the name itself, or every name that starts with it."""

    LITERAL = "literal"
    PREFIXED = "prefixed"


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW ACL on a resource name (literal, or a prefix), for principal `User:<user>`, from any host."""

    user: str
    operation: Operation
    resource: Resource
    name: str
    pattern: Pattern = Pattern.LITERAL


def agency_group(topics: Topics, agency_id: str) -> str:
    return f"{topics.prefix}maillage.agency.{agency_id}"


def gateway_group(topics: Topics) -> str:
    return f"{topics.prefix}maillage.gateway"


def agency_grants(agency_id: str, topics: Topics) -> list[Grant]:
    """An agency submits events and its own dead letters, and reads only its own deliveries and statuses."""
    # Idempotent producers need no IDEMPOTENT_WRITE on the cluster since Kafka 3.0 (KIP-679): WRITE
    # on a topic is enough. Statuses say who received what about a person: each agency reads only those
    # about the events it sent; its dead letters go to a topic only it writes, so none can pass for another's.
    return [
        Grant(agency_id, Operation.WRITE, Resource.TOPIC, topics.submitted),
        Grant(agency_id, Operation.WRITE, Resource.TOPIC, topics.dead_letters_of(agency_id)),
        Grant(agency_id, Operation.READ, Resource.TOPIC, topics.deliver(agency_id)),
        Grant(agency_id, Operation.READ, Resource.TOPIC, topics.status(agency_id)),
        Grant(agency_id, Operation.READ, Resource.GROUP, agency_group(topics, agency_id)),
    ]


def gateway_grants(agency_ids: Sequence[str], topics: Topics, *, transactional_id: str) -> list[Grant]:
    """The gateway reads submissions and writes every delivery, status, audit record and its dead letters; its
    transactional ids are one per partition of the submitted topic (`<transactional_id>.p<N>`), hence a prefix."""
    written = [topics.audit, topics.dlq, *(t for a in agency_ids for t in (topics.deliver(a), topics.status(a)))]
    return [
        Grant(GATEWAY_PRINCIPAL, Operation.READ, Resource.TOPIC, topics.submitted),
        Grant(GATEWAY_PRINCIPAL, Operation.READ, Resource.GROUP, gateway_group(topics)),
        *(Grant(GATEWAY_PRINCIPAL, Operation.WRITE, Resource.TOPIC, name) for name in written),
        Grant(GATEWAY_PRINCIPAL, Operation.WRITE, Resource.TRANSACTIONAL_ID, f"{transactional_id}.p", Pattern.PREFIXED),
    ]


def dispatcher_group(topics: Topics) -> str:
    return f"{topics.prefix}maillage.dispatcher"


def dispatcher_grants(served: Sequence[str], topics: Topics) -> list[Grant]:
    """The dispatcher reads the deliveries of the agencies it serves, submits their acknowledgements, and
    reports to operators what became of each alert (metadata only)."""
    return [
        Grant(DISPATCHER_PRINCIPAL, Operation.WRITE, Resource.TOPIC, topics.submitted),
        Grant(DISPATCHER_PRINCIPAL, Operation.WRITE, Resource.TOPIC, topics.oncall),
        Grant(DISPATCHER_PRINCIPAL, Operation.WRITE, Resource.TOPIC, topics.dead_letters_of(DISPATCHER_PRINCIPAL)),
        Grant(DISPATCHER_PRINCIPAL, Operation.READ, Resource.GROUP, dispatcher_group(topics)),
        *(Grant(DISPATCHER_PRINCIPAL, Operation.READ, Resource.TOPIC, topics.deliver(a)) for a in served),
    ]


def monitor_grants(agency_ids: Sequence[str], topics: Topics) -> list[Grant]:
    """The monitor reads the metadata topics, replays what the gateway refused onto `submitted`, and reads
    every group's committed offsets and every topic's end (DESCRIBE) to show consumer lag."""
    read = [topics.audit, topics.oncall, *map(topics.status, agency_ids), *topics.dead_letter_topics(agency_ids)]
    groups = [gateway_group(topics), dispatcher_group(topics), *(agency_group(topics, a) for a in agency_ids)]
    return [
        *(Grant(MONITOR_PRINCIPAL, Operation.READ, Resource.TOPIC, t) for t in read),
        Grant(MONITOR_PRINCIPAL, Operation.READ, Resource.GROUP, monitor_group(topics)),
        Grant(MONITOR_PRINCIPAL, Operation.WRITE, Resource.TOPIC, topics.submitted),
        *(Grant(MONITOR_PRINCIPAL, Operation.DESCRIBE, Resource.GROUP, g) for g in groups),
        *(Grant(MONITOR_PRINCIPAL, Operation.DESCRIBE, Resource.TOPIC, topics.deliver(a)) for a in agency_ids),
    ]


def monitor_group(topics: Topics) -> str:
    return f"{topics.prefix}maillage.monitor"


def access_plan(network: Network, topics: Topics, *, gateway_transactional_id: str) -> list[Grant]:
    agency_ids = [a.id for a in network.agencies]
    grants = [g for a in agency_ids for g in agency_grants(a, topics)]
    grants += gateway_grants(agency_ids, topics, transactional_id=gateway_transactional_id)
    if network.dispatched:
        grants += dispatcher_grants(network.dispatched, topics)
    grants += monitor_grants(agency_ids, topics)
    return sorted(set(grants))


def principals(network: Network) -> list[str]:
    return [
        *(a.id for a in network.agencies),
        GATEWAY_PRINCIPAL,
        MONITOR_PRINCIPAL,
        *([DISPATCHER_PRINCIPAL] if network.dispatched else []),
    ]


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


def load_kafka_auth(private_dir: Path, owner: str, *, network: Network | None = None) -> KafkaAuth:
    """The owner's identity, over TLS if the network's brokers are (trusting its CA)."""
    password = password_file(private_dir, owner).read_text().strip()
    if network is None:
        return KafkaAuth(username=owner, password=password)
    return KafkaAuth(username=owner, password=password, tls=network.kafka.tls, ca_file=network.ca_file)


# Kafka's wire codes (org.apache.kafka.common.acl / resource): what CreateAcls takes.
_RESOURCE_CODE = {Resource.TOPIC: 2, Resource.GROUP: 3, Resource.TRANSACTIONAL_ID: 5}
_OPERATION_CODE = {Operation.READ: 3, Operation.WRITE: 4, Operation.DESCRIBE: 8}
_PATTERN_CODE = {Pattern.LITERAL: 3, Pattern.PREFIXED: 4}
_ALLOW, _SCRAM_SHA_512 = 3, 2


class _CreateAcls(Request[CreateAclsRequest_v1]):
    """Every binding of the plan in one CreateAcls request (aiokafka's own builder takes one at a time)."""

    API_KEY = 30

    def __init__(self, grants: Sequence[Grant]) -> None:
        self.creations = [
            (
                _RESOURCE_CODE[g.resource],
                g.name,
                _PATTERN_CODE[g.pattern],
                f"User:{g.user}",
                "*",
                _OPERATION_CODE[g.operation],
                _ALLOW,
            )
            for g in grants
        ]

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class(self.creations)


class _AlterScramResponse(Response):
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("user", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _AlterScramStruct(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = _AlterScramResponse
    SCHEMA = Schema(
        ("deletions", CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields))),
        (
            "upsertions",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("mechanism", Int8),
                ("iterations", Int32),
                ("salt", CompactBytes),
                ("salted_password", CompactBytes),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _AlterScram(Request[_AlterScramStruct]):
    """AlterUserScramCredentials (KIP-554), which aiokafka's admin client lacks: the salted password is
    computed here, so the password itself never travels, not even to the broker."""

    API_KEY = 51

    def __init__(self, users: Sequence[KafkaAuth]) -> None:
        self.upsertions: list[tuple[str, int, int, bytes, bytes, dict[int, bytes]]] = []
        for user in users:
            salt = secrets.token_bytes(32)
            salted = hashlib.pbkdf2_hmac("sha512", user.password.encode(), salt, SCRAM_ITERATIONS)
            self.upsertions.append((user.username, _SCRAM_SHA_512, SCRAM_ITERATIONS, salt, salted, {}))

    def build(self, request_struct_class: type[_AlterScramStruct]) -> _AlterScramStruct:
        return request_struct_class([], self.upsertions, {})


async def _provision(bootstrap: str, admin: KafkaAuth, users: Sequence[KafkaAuth], grants: Sequence[Grant]) -> None:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000, **client_kwargs(admin))
    await client.start()
    try:
        # The admin client sends to any broker; brokers forward both requests to the KRaft controller.
        scram = await client._send_request(_AlterScram(users))
        refused = [f"{user}: {message or code}" for user, code, message, _ in scram.results if code]
        acls = await client._send_request(_CreateAcls(grants))
        refused += [
            f"ACL {grants[i]}: {message or code}" for i, (code, message) in enumerate(acls.creation_responses) if code
        ]
    except KafkaError as exc:
        raise AccessError(f"Kafka refused the provisioning ({type(exc).__name__})") from None
    finally:
        await client.close()
    if refused:
        raise AccessError("; ".join(refused[:5]))


async def apply_access(
    network: Network,
    topics: Topics,
    *,
    bootstrap: str,
    admin: KafkaAuth,
    private_dir: Path,
    gateway_transactional_id: str,
) -> dict[str, Path]:
    """Create or update every principal's SCRAM credential and add the plan's ACLs; idempotent.

    Returns each principal's password file. ACLs that the plan no longer holds are not removed.
    """
    users = [KafkaAuth(username=p, password=ensure_password(private_dir, p)) for p in principals(network)]
    plan = access_plan(network, topics, gateway_transactional_id=gateway_transactional_id)
    await _provision(bootstrap, admin, users, plan)
    return {u.username: password_file(private_dir, u.username) for u in users}
