"""The whole network as `maillage up` starts it, driven over HTTP, then stopped with Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from maillage.cli.acl import load_kafka_auth
from maillage.cli.kafka_local import free_port
from maillage.core.config.network import Network, load_network
from maillage.core.crypto.keys import KeyDirs, OwnKeys, PublicKeys
from maillage.core.crypto.tokens import ALL_AGENCY_SCOPES, Scope, mint
from maillage.core.messaging.envelope import new_subject_ref
from maillage.core.messaging.kafka_auth import KafkaAuth, client_kwargs
from tests.processes import alive, children_of, maillage, network_copy, wait_ready

pytestmark = pytest.mark.e2e


def poll(fetch, *, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = fetch()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError("timed out")


def exposed(root: Path) -> list[str]:
    """Every file or directory under `root` (itself included) that another user could read or enter."""
    paths = [root, *root.rglob("*")]
    return [
        f"{p} {stat.S_IMODE(p.lstat().st_mode):o}"
        for p in paths
        if not p.is_symlink() and stat.S_IMODE(p.lstat().st_mode) & 0o077
    ]


async def read_as(bootstrap: str, topic: str, *, auth: KafkaAuth | None) -> str:
    """Try to read `topic` from its start as this principal (None: no credentials at all)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", request_timeout_ms=5000, **client_kwargs(auth)
    )
    try:
        await consumer.start()
        await consumer.getmany(timeout_ms=2000)
        return "read"
    except KafkaError as exc:
        return f"refused: {type(exc).__name__}"
    finally:
        await consumer.stop()


def client_of(network: Network, agency_id: str, dirs: KeyDirs) -> httpx.Client:
    """The agency's partner system, with a token minted from the keys `maillage up` created."""
    token = mint(OwnKeys.load(dirs, agency_id, PublicKeys.load(dirs)), subject="e2e", scopes=ALL_AGENCY_SCOPES)
    return httpx.Client(
        base_url=f"http://127.0.0.1:{network.agency(agency_id).port}", headers={"Authorization": f"Bearer {token}"}
    )


def test_up_runs_the_pole_and_ctrl_c_leaves_no_process(tmp_path: Path) -> None:
    network_file = network_copy(tmp_path, prefix=f"e2e{uuid.uuid4().hex[:8]}.")
    network = load_network(network_file)
    kafka_port = free_port()
    # Its own broker, as `make run` starts it: secure by default.
    up = maillage(
        "up",
        "--network",
        str(network_file),
        "--kafka-port",
        str(kafka_port),
        "--data-dir",
        str(tmp_path / "var"),
        env={},
        log=tmp_path / "up.log",
    )
    try:
        wait_ready(f"http://127.0.0.1:{network.gateway.port}", up, timeout=90)
        for agency in network.agencies:
            wait_ready(f"http://127.0.0.1:{agency.port}", up, timeout=30)
        started = children_of(up.pid)
        dirs = KeyDirs(private=tmp_path / "var" / "keys" / "private", public=tmp_path / "var" / "keys" / "public")
        refuge = client_of(network, "refuge-liege", dirs)
        police = client_of(network, "zp-meuse", dirs)
        subject = new_subject_ref()

        alert = refuge.post(
            "/v1/alerts",
            json={
                "subject_ref": subject,
                "subject_role": "victim",
                "severity": "imminent",
                "kind": "weapon",
                "recipients": ["police"],
                "legal_basis": "danger",
                "justification": "He showed a gun.",
                "data": {
                    "identity": {"given_name": "Lina"},
                    "location": {"address": "Quai 3, Liège"},
                    "health": {"notes": "pregnant"},
                    "narrative": "Neighbours called us.",
                },
            },
        )
        assert alert.status_code == 202, alert.text
        event_id = alert.json()["event_id"]

        def police_inbox():  # type: ignore[no-untyped-def]
            items = police.get("/v1/inbox").json()["items"]
            return next((i for i in items if i["event_id"] == event_id), None)

        item = poll(police_inbox)
        assert set(item["data"]) - {"severity", "kind"} == {"identity", "location"}
        assert item["legal_basis"] == "danger"
        fate = poll(lambda: (f := refuge.get(f"/v1/events/{event_id}").json())["state"] != "pending" and f)
        [line] = fate["recipients"]
        assert line["recipient"] == "zp-meuse" and line["review"] is True
        assert line["removed"] == {"health": "outside_danger_rule", "narrative": "outside_danger_rule"}

        # The demo a newcomer plays against it: removals shown, and the alert taken in hand on call.
        wait_ready(f"http://127.0.0.1:{network.dispatcher.port}", up, timeout=30)
        demo = subprocess.run(
            [
                sys.executable,
                "-m",
                "maillage.cli.main",
                "demo",
                "--network",
                str(network_file),
                "--data-dir",
                str(tmp_path / "var"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "COLUMNS": "160"},
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "above_ceiling" in demo.stdout and "is paged live and acknowledges" in demo.stdout
        assert "sees the alert acknowledged" in demo.stdout and "sees it as accepted" in demo.stdout
        said = " ".join(demo.stdout.split())  # as read, whatever the terminal's wrapping
        assert "and approved the disclosure" in said, "a second professional reviewed the danger alert"
        assert "consults the Pôle's desk pole-meuse anonymously" in said and "the desk answers" in said
        assert "convenes a case conference" in said and "not_a_participant" in said

        # A local process reads no audit record: not without credentials, not as an agency's principal.
        bootstrap = f"127.0.0.1:{kafka_port}"
        audit = f"{network.kafka.topic_prefix}maillage.audit"
        assert asyncio.run(read_as(bootstrap, audit, auth=None)) == "refused: KafkaConnectionError"
        refuge = load_kafka_auth(dirs.private, "refuge-liege")
        assert asyncio.run(read_as(bootstrap, audit, auth=refuge)) == "refused: TopicAuthorizationFailedError"
        assert (
            asyncio.run(read_as(bootstrap, f"{network.kafka.topic_prefix}maillage.deliver.refuge-liege", auth=refuge))
            == "read"
        ), "while its own deliveries are its to read"
        assert not exposed(tmp_path / "var"), "nothing at rest is readable by anyone else on the machine"
        # The monitor, logged in as its own principal, still reads every group's lag.
        operator = mint(
            OwnKeys.load(dirs, network.operators.issuer, PublicKeys.load(dirs)),
            subject="e2e",
            scopes=(Scope.MONITOR_READ,),
        )
        lag = poll(
            lambda: [
                g
                for g in httpx.get(
                    f"http://127.0.0.1:{network.monitor.port}/v1/lag", headers={"Authorization": f"Bearer {operator}"}
                ).json()["groups"]
                if g["group"] == "maillage.gateway"
            ]
        )
        assert lag[0]["topic"] == "maillage.submitted"
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)
    assert up.returncode == 0
    assert len(started) >= len(network.agencies) + 1
    assert [pid for pid in started if alive(pid)] == [], "Ctrl-C stops every process `up` started"
