"""The whole network as `maillage up` starts it, driven over HTTP, a service killed under it, then Ctrl-C.

One `maillage up` serves the file's tests in order (starting one takes most of a test's time); a test that finds
it stopped starts another."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
from tests.processes import alive, children_of, command_line, maillage, network_copy, wait_ready

pytestmark = pytest.mark.e2e

# Short, so that the Ctrl-C test proves the deadline holds without waiting 10 s.
SHUTDOWN_SECONDS = 4.0


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


@dataclass
class Running:
    """`maillage up` as a user starts it in a terminal: its own process group, its output in `log`."""

    process: subprocess.Popen[bytes]
    network_file: Path
    network: Network
    data_dir: Path
    log: Path
    kafka_port: int

    @property
    def dirs(self) -> KeyDirs:
        return KeyDirs(private=self.data_dir / "keys" / "private", public=self.data_dir / "keys" / "public")

    def said_since(self, offset: int) -> str:
        return self.log.read_bytes()[offset:].decode(errors="replace")

    def ctrl_c(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)


def start_up(root: Path) -> Running:
    network_file = network_copy(root, prefix=f"e2e{uuid.uuid4().hex[:8]}.")
    network = load_network(network_file)
    kafka_port = free_port()
    # Its own broker, as `make run` starts it: secure by default.
    running = Running(
        process=maillage(
            "up",
            "--network",
            str(network_file),
            "--kafka-port",
            str(kafka_port),
            "--data-dir",
            str(root / "var"),
            "--shutdown-seconds",
            str(SHUTDOWN_SECONDS),
            env={},
            log=root / "up.log",
            own_group=True,
        ),
        network_file=network_file,
        network=network,
        data_dir=root / "var",
        log=root / "up.log",
        kafka_port=kafka_port,
    )
    try:
        # Generous: on a loaded machine a service may need a restart while `up` starts (see `wait_ready`).
        wait_ready(f"http://127.0.0.1:{network.gateway.port}", running.process, timeout=150)
        for port in (*(a.port for a in network.agencies), network.dispatcher.port, network.monitor.port):
            wait_ready(f"http://127.0.0.1:{port}", running.process, timeout=30)
    except AssertionError:
        running.ctrl_c()
        running.process.wait(timeout=60)
        raise
    return running


@pytest.fixture(scope="module")
def pole_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], Running]]:
    started: list[Running] = []

    def current() -> Running:
        if not started or started[-1].process.poll() is not None:
            started.append(start_up(tmp_path_factory.mktemp("up")))
        return started[-1]

    yield current
    for running in started:
        if running.process.poll() is None:
            running.ctrl_c()
            running.process.wait(timeout=60)


def danger_alert(subject: str) -> dict[str, object]:
    return {
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
    }


def test_up_runs_the_pole_secure_by_default(pole_up: Callable[[], Running]) -> None:
    up = pole_up()
    network, network_file, kafka_port, tmp_path = up.network, up.network_file, up.kafka_port, up.data_dir.parent
    dirs = up.dirs
    refuge = client_of(network, "refuge-liege", dirs)
    police = client_of(network, "zp-meuse", dirs)
    subject = new_subject_ref()

    alert = refuge.post("/v1/alerts", json=danger_alert(subject))
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
    assert "praxis-meuse is told; what it received that a victim's ceiling would not allow it: contact" in said
    assert "One call: exactly those deliveries erased; confirmed by praxis-meuse (1 erased)" in said
    assert "asks every holder to:" in said and "zp-meuse (its on-call, at the dispatcher) confirmed" in said

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


def service_pids(up: Running, service: str) -> list[int]:
    """The live processes of `maillage serve <service>` under `up`."""
    return [pid for pid in children_of(up.process.pid) if command_line(pid)[3:5] == ["serve", service]]


def test_up_restarts_a_service_that_was_killed(pole_up: Callable[[], Running]) -> None:
    up = pole_up()
    gateway = f"http://127.0.0.1:{up.network.gateway.port}"
    [crashed] = service_pids(up, "gateway")
    offset = up.log.stat().st_size

    killed_at = time.monotonic()
    os.kill(crashed, signal.SIGKILL)
    [restarted] = poll(lambda: [p for p in service_pids(up, "gateway") if p != crashed])
    wait_ready(gateway, up.process, timeout=60)
    ready_after = time.monotonic() - killed_at
    print(f"gateway SIGKILLed: a new process after the 1 s backoff, ready {ready_after:.1f} s after the kill")

    refuge = client_of(up.network, "refuge-liege", up.dirs)
    alert = refuge.post("/v1/alerts", json=danger_alert(new_subject_ref()))
    assert alert.status_code == 202, alert.text
    event_id = alert.json()["event_id"]
    fate = poll(lambda: (f := refuge.get(f"/v1/events/{event_id}").json())["state"] != "pending" and f, timeout=60)
    assert [line["recipient"] for line in fate["recipients"]] == ["zp-meuse"], "decided by the new gateway"
    print(f"an alert sent then decided {time.monotonic() - killed_at:.1f} s after the kill")

    said = up.said_since(offset)
    # 1 s after a first crash; longer if the gateway already needed a restart while `up` started on a loaded
    # machine (a credential the broker had not propagated yet) less than a minute before.
    assert re.search(r"gateway exited \(signal SIGKILL\); restarting in \d+ s", said), said
    assert re.search(rf"gateway restarted \(pid {restarted}, restart \d+\)", said), said


def test_up_restarts_its_broker_that_was_killed(pole_up: Callable[[], Running]) -> None:
    up = pole_up()
    [crashed] = [pid for pid in children_of(up.process.pid) if "kafka.Kafka" in command_line(pid)]
    offset = up.log.stat().st_size

    killed_at = time.monotonic()
    os.kill(crashed, signal.SIGKILL)
    refuge = client_of(up.network, "refuge-liege", up.dirs)
    # Accepted while the broker is away or as soon as it is back (the agency's outbox holds it meanwhile).
    alert = poll(
        lambda: (a := refuge.post("/v1/alerts", json=danger_alert(new_subject_ref()))).status_code == 202 and a
    )
    event_id = alert.json()["event_id"]
    # Mostly the Kafka clients finding the group coordinator again: 20 s on a quiet machine, 90 s on a loaded one.
    fate = poll(lambda: (f := refuge.get(f"/v1/events/{event_id}").json())["state"] != "pending" and f, timeout=180)
    assert [line["recipient"] for line in fate["recipients"]] == ["zp-meuse"]
    print(f"broker SIGKILLed: an alert sent meanwhile decided {time.monotonic() - killed_at:.1f} s after the kill")

    said = up.said_since(offset)
    assert re.search(r"kafka exited \(signal SIGKILL\); restarting in \d+ s", said), said
    assert "kafka restarted (pid " in said


def test_ctrl_c_to_the_process_group_stops_everything_before_the_deadline(pole_up: Callable[[], Running]) -> None:
    up = pole_up()
    started = children_of(up.process.pid)
    assert len(started) >= len(up.network.agencies) + 4, "the agencies, gateway, dispatcher, monitor and broker"
    offset = up.log.stat().st_size

    begun = time.monotonic()
    up.ctrl_c()
    up.process.wait(timeout=SHUTDOWN_SECONDS + 30)
    took = time.monotonic() - begun
    left = [pid for pid in started if alive(pid)]

    assert up.process.returncode == 0
    assert left == [], "Ctrl-C stops every process `up` started"
    assert took < SHUTDOWN_SECONDS + 3, f"stopped in {took:.1f} s, past the {SHUTDOWN_SECONDS} s deadline"
    print(f"Ctrl-C: {len(started)} processes stopped, `up` gone {took:.1f} s after it")
    said = up.said_since(offset)
    assert "Stopped" in said
    assert "restarting" not in said, "nothing stopped by the Ctrl-C is taken for a crash"
