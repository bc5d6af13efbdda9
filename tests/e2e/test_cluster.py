"""`maillage up --brokers 3`: a three-node KRaft cluster, every topic on all three; one node lost, nothing with it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import threading
import time
import tomllib
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from maillage.cli.acl import load_kafka_auth
from maillage.cli.kafka_cluster import LocalCluster
from maillage.cli.kafka_local import ADMIN_PASSWORD_FILE, ScramSetup
from maillage.core.config.network import load_network
from maillage.core.crypto.keys import KeyDirs, OwnKeys, PublicKeys
from maillage.core.crypto.tokens import ALL_AGENCY_SCOPES, mint
from maillage.core.messaging import bus
from maillage.core.messaging.envelope import new_subject_ref
from maillage.core.messaging.kafka_auth import KafkaAuth, client_kwargs
from maillage.core.messaging.topics import Topics
from maillage.core.polling import eventually
from tests.processes import alive, children_of, maillage, network_copy, wait_ready
from tests.support import NOTICE_VERSION

pytestmark = pytest.mark.e2e

REFUGE, CPAS = "refuge-liege", "cpas-seraing"


def three_free_ports() -> int:
    """A port whose next two are free as well: the cluster's nodes listen on port, port + 1, port + 2."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = int(probe.getsockname()[1])
        if first < 65000 and all(_free(first + i) for i in range(3)):
            return first
    raise AssertionError("no three consecutive free ports")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


async def partitions_of(bootstrap: str, admin: KafkaAuth, names: list[str]) -> list[dict[str, Any]]:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000, **client_kwargs(admin))
    await client.start()
    try:
        return [p | {"topic": t["topic"]} for t in await client.describe_topics(names) for p in t["partitions"]]
    finally:
        await client.close()


async def topic_configs(bootstrap: str, admin: KafkaAuth, names: list[str]) -> dict[str, dict[str, str]]:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000, **client_kwargs(admin))
    await client.start()
    try:
        described = await bus.described_configs(client, names)
    finally:
        await client.close()
    return {topic: {key: value for key, (value, _) in configs.items()} for topic, configs in described.items()}


async def read_as(bootstrap: str, topics: list[str], *, auth: KafkaAuth | None) -> str:
    """Try to read these topics from their start as this principal (None: no credentials at all)."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        request_timeout_ms=5000,
        **client_kwargs(auth),
    )
    try:
        await consumer.start()
        await consumer.getmany(timeout_ms=2000)
        return "read"
    except KafkaError as exc:
        return f"refused: {type(exc).__name__}"
    finally:
        await consumer.stop()


def node_pid(up_pid: int, node: int) -> int:
    """The JVM `up` started for this node of the cluster."""
    wanted = f"node-{node}{os.sep}server.properties".encode()
    for pid in children_of(up_pid):
        try:
            if wanted in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    raise AssertionError(f"no process of node {node}")


def service_env(pids: list[int], command: str) -> dict[str, str]:
    """The environment `up` gave the service started with this command."""
    for pid in pids:
        try:
            if command.encode() in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" "):
                pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                return dict(p.decode().split("=", 1) for p in pairs if b"=" in p)
        except OSError:
            continue
    raise AssertionError(f"no process runs {command!r}")


def agency_client(port: int, agency_id: str, dirs: KeyDirs) -> httpx.AsyncClient:
    token = mint(OwnKeys.load(dirs, agency_id, PublicKeys.load(dirs)), subject="e2e", scopes=ALL_AGENCY_SCOPES)
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"})


async def refer(sender: httpx.AsyncClient, recipient: httpx.AsyncClient) -> str:
    """A consented referral from the refuge to the CPAS, once it is in the CPAS's inbox: its event id."""
    subject = new_subject_ref()
    consent = await sender.post(
        "/v1/consents",
        json={
            "subject_ref": subject,
            "categories": ["identity", "narrative"],
            "recipients": [CPAS],
            "purposes": ["referral"],
            "notice_version": NOTICE_VERSION,
            "notice_language": "fr",
        },
    )
    assert consent.status_code == 201, consent.text
    sent = await sender.post(
        "/v1/referrals",
        json={
            "subject_ref": subject,
            "subject_role": "victim",
            "recipient": CPAS,
            "reason": "shelter",
            "data": {"identity": {"given_name": "Amina"}, "narrative": "Needs a shelter place tonight."},
        },
    )
    assert sent.status_code == 202, sent.text
    event_id = str(sent.json()["event_id"])

    async def delivered() -> bool:
        inbox = (await recipient.get("/v1/inbox")).json()["items"]
        return any(item["event_id"] == event_id for item in inbox)

    await eventually(delivered, timeout=120, every=0.5, what=f"referral {event_id} in the CPAS's inbox")
    return event_id


def two_agency_network(directory: Path) -> Path:
    """The demo Pôle cut to the refuge and the CPAS, without on-call: the cluster is what is tried here, and
    three JVMs leave two cores little room for a dozen services besides."""
    path = network_copy(directory, prefix=f"e2e{uuid.uuid4().hex[:8]}.")
    doc = tomllib.loads(path.read_text())
    doc["agencies"] = [a for a in doc["agencies"] if a["id"] in (REFUGE, CPAS)]
    doc.pop("oncall", None)
    path.write_bytes(tomli_w.dumps(doc).encode())
    return path


async def test_three_brokers_replicate_every_topic_and_deliver_with_one_of_them_stopped(tmp_path: Path) -> None:
    network_file = two_agency_network(tmp_path)
    network = load_network(network_file)
    assert not network.dispatched
    port = three_free_ports()
    bootstrap = ",".join(f"127.0.0.1:{port + i}" for i in range(3))
    began = time.monotonic()
    up = maillage(
        *("up", "--network", str(network_file), "--kafka-port", str(port), "--brokers", "3"),
        *("--data-dir", str(tmp_path / "var")),
        # The node killed below stays down for the rest of the test: `up` would otherwise relaunch it a second
        # later and it would rejoin while the test looks for the two survivors alone (relaunching is tried in
        # test_up and in test_a_node_killed_while_the_cluster_starts_is_launched_again).
        env={"MAILLAGE_RESTART_FIRST_SECONDS": "3600", "MAILLAGE_RESTART_MAX_SECONDS": "3600"},
        log=tmp_path / "up.log",
    )
    try:
        wait_ready(f"http://127.0.0.1:{network.gateway.port}", up, timeout=300)
        for agency in (REFUGE, CPAS):
            wait_ready(f"http://127.0.0.1:{network.agency(agency).port}", up, timeout=60)
        print(f"maillage up --brokers 3: gateway and agencies ready in {time.monotonic() - began:.0f}s")
        started = children_of(up.pid)
        assert service_env(started, "serve gateway")["MAILLAGE_KAFKA_BOOTSTRAP"] == bootstrap, "every node's address"
        dirs = KeyDirs(private=tmp_path / "var" / "keys" / "private", public=tmp_path / "var" / "keys" / "public")
        admin = KafkaAuth(username="admin", password=(dirs.private / ADMIN_PASSWORD_FILE).read_text().strip())
        topics = Topics(prefix=network.kafka.topic_prefix)
        names = topics.all_for([a.id for a in network.agencies])

        # Every partition of every topic on the three brokers, all three in sync; two needed for a write.
        partitions = await partitions_of(bootstrap, admin, names)
        assert {p["topic"] for p in partitions} == set(names)
        assert all(sorted(p["replicas"]) == [1, 2, 3] and sorted(p["isr"]) == [1, 2, 3] for p in partitions)
        configs = await topic_configs(bootstrap, admin, names)
        assert {configs[name]["min.insync.replicas"] for name in names} == {"2"}
        assert configs[topics.audit]["retention.ms"] == "-1"

        # No broker of the cluster serves anyone without credentials; the agencies' ACLs hold on all three.
        for address in bootstrap.split(","):
            assert await read_as(address, names, auth=None) == "refused: KafkaConnectionError"
        refuge_kafka = load_kafka_auth(dirs.private, REFUGE)
        assert await read_as(bootstrap, [topics.audit], auth=refuge_kafka) == "refused: TopicAuthorizationFailedError"

        async with (
            agency_client(network.agency(REFUGE).port, REFUGE, dirs) as refuge,
            agency_client(network.agency(CPAS).port, CPAS, dirs) as cpas,
        ):
            await refer(refuge, cpas)

            # The first node — the first address every service was given — dies without a word.
            os.kill(node_pid(up.pid, 1), signal.SIGKILL)
            survivors = ",".join(bootstrap.split(",")[1:])

            async def shrunk() -> bool:
                try:
                    found = await partitions_of(survivors, admin, names)
                except KafkaError:  # asked the stopped node, which the metadata still names
                    return False
                return all(sorted(p["isr"]) == [2, 3] and p["leader"] in (2, 3) for p in found)

            await eventually(shrunk, timeout=60, every=1, what="every partition led and in sync on nodes 2 and 3")
            # acks=all with two replicas in sync: the referral is written, decided and delivered.
            await refer(refuge, cpas)
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=90)
    assert up.returncode == 0
    assert [pid for pid in started if alive(pid)] == [], "Ctrl-C stops every process `up` started"


def test_a_node_killed_while_the_cluster_starts_is_launched_again(tmp_path: Path) -> None:
    launches: list[int] = []

    def popen(args: list[str], **options: Any) -> subprocess.Popen[bytes]:
        process: subprocess.Popen[bytes] = subprocess.Popen(args, **options)
        if args[-1].endswith("node-2/server.properties"):
            launches.append(process.pid)
            if len(launches) == 1:  # the first launch dies before the quorum has formed
                threading.Timer(1.0, process.kill).start()
        return process

    cluster = LocalCluster(data_dir=tmp_path / "cluster", sasl=ScramSetup(), port=three_free_ports(), popen=popen)
    cluster.start()
    try:
        assert len(launches) == 2
        assert len(asyncio.run(cluster.registered())) == 3
    finally:
        cluster.stop()
