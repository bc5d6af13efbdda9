"""`maillage up --gateways 2`: two gateway processes share the submitted topic, one killed and restarted under it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from aiokafka.partitioner import murmur2

from maillage.core.config.network import load_network
from maillage.core.crypto.keys import KeyDirs
from maillage.core.messaging.envelope import new_subject_ref
from maillage.core.polling import eventually
from tests.e2e.test_cluster import CPAS, REFUGE, agency_client, two_agency_network
from tests.processes import alive, children_of, maillage, wait_ready
from tests.support import NOTICE_VERSION

pytestmark = pytest.mark.e2e


def gateway_ports(up_pid: int) -> dict[int, int]:
    """Each gateway process `up` started, by its pid: the port it listens on."""
    found = {}
    for pid in children_of(up_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if "serve" in argv and "gateway" in argv:
            found[pid] = int(argv[argv.index("--port") + 1])
    return found


async def refer(sender: httpx.AsyncClient, recipient: httpx.AsyncClient, subject: str) -> None:
    """A consented referral from the refuge to the CPAS, once it is in the CPAS's inbox."""
    consent = await sender.post(
        "/v1/consents",
        json={
            "subject_ref": subject,
            "categories": ["identity"],
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
            "data": {"identity": {"given_name": "Amina"}},
        },
    )
    assert sent.status_code == 202, sent.text
    event_id = str(sent.json()["event_id"])

    async def delivered() -> bool:
        inbox = (await recipient.get("/v1/inbox", params={"limit": 500})).json()["items"]
        return any(item["event_id"] == event_id for item in inbox)

    await eventually(delivered, timeout=120, every=0.5, what=f"referral {event_id} in the CPAS's inbox")


async def test_up_with_two_gateways_shares_the_partitions_and_survives_a_sigkill(tmp_path: Path) -> None:
    network_file = two_agency_network(tmp_path)
    network = load_network(network_file)
    data_dir = tmp_path / "var"
    up = maillage(
        *("up", "--network", str(network_file), "--gateways", "2", "--data-dir", str(data_dir)),
        env={},
        log=tmp_path / "up.log",
    )
    subjects: list[str] = []
    try:
        wait_ready(f"http://127.0.0.1:{network.gateway.port}", up, timeout=420)  # a loaded machine: minutes
        for agency in (REFUGE, CPAS):
            wait_ready(f"http://127.0.0.1:{network.agency(agency).port}", up, timeout=180)
        gateways = gateway_ports(up.pid)
        assert sorted(gateways.values())[0] != sorted(gateways.values())[1] and len(gateways) == 2
        assert network.gateway.port in gateways.values(), "the first gateway on the network file's port"
        for port in gateways.values():
            wait_ready(f"http://127.0.0.1:{port}", up, timeout=180)  # ready: it holds partitions of its own

        dirs = KeyDirs(private=data_dir / "keys" / "private", public=data_dir / "keys" / "public")
        async with (
            agency_client(network.agency(REFUGE).port, REFUGE, dirs) as refuge,
            agency_client(network.agency(CPAS).port, CPAS, dirs) as cpas,
        ):
            for _ in range(4):
                subjects.append(new_subject_ref())
                await refer(refuge, cpas, subjects[-1])

            # The second gateway dies without a word: the first takes its partitions, `up` restarts it.
            victim = next(pid for pid, port in gateways.items() if port != network.gateway.port)
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            subjects.append(new_subject_ref())
            await refer(refuge, cpas, subjects[-1])
            print(f"\na referral decided and delivered {time.monotonic() - killed:.1f} s after a gateway's SIGKILL")

            async def restarted() -> bool:
                return len(gateway_ports(up.pid)) == 2 and victim not in gateway_ports(up.pid)

            await eventually(restarted, timeout=60, what="`up` to restart the killed gateway")
            for _ in range(4):
                subjects.append(new_subject_ref())
                await refer(refuge, cpas, subjects[-1])
        started = children_of(up.pid)
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=90)
    assert up.returncode == 0
    assert [pid for pid in started if alive(pid)] == [], "Ctrl-C stops every process `up` started"

    verified = subprocess.run(
        [
            sys.executable,
            "-m",
            "maillage.cli.main",
            "audit",
            "verify",
            "--database",
            f"sqlite+aiosqlite:///{data_dir / 'gateway.db'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    chains = {(murmur2(s.encode()) & 0x7FFFFFFF) % network.kafka.partitions for s in subjects}
    said = " ".join(verified.stdout.split())
    assert verified.returncode == 0, said + verified.stderr
    assert f"{len(subjects)} audit records: intact, every one of {len(chains)} chain" in said
