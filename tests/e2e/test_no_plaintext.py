"""Sealed data: a marker put in every field of every event appears in no topic, no log line, no metric, and
nowhere an operator looks (the monitor's JSON API and dashboard, the dispatcher's operator view)."""

from __future__ import annotations

import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from maillage.cli.credentials import scrape_secret
from maillage.core.config.network import Network, load_network
from maillage.core.crypto.keys import KeyDirs
from maillage.core.crypto.tokens import Scope, mint
from maillage.core.crypto.trust import Trust
from maillage.core.messaging.envelope import new_subject_ref
from maillage.core.polling import eventually
from tests.e2e.test_up import client_of, poll
from tests.processes import maillage, network_copy, wait_ready

pytestmark = pytest.mark.e2e


@asynccontextmanager
async def started_producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


def everything_marked(marker: str) -> dict[str, object]:
    return {
        "identity": {"given_name": f"{marker}given", "family_name": f"{marker}family", "birth_date": "1990-01-01"},
        "contact": {
            "phone": f"{marker}phone",
            "email": f"{marker}@example.org",
            "safe_contact_times": f"{marker}times",
        },
        "location": {"address": f"{marker}address", "municipality": f"{marker}town", "in_shelter": True},
        "children": [{"given_name": f"{marker}child", "birth_year": 2018}],
        "risk": {"level": "high", "factors": [f"{marker}factor"]},
        "judicial": {"protection_order": True, "case_reference": f"{marker}case"},
        "health": {"notes": f"{marker}health"},
        "narrative": f"{marker}narrative",
    }


async def raw_records(bootstrap: str, prefix: str) -> list[bytes]:
    """Key, value and every header of every record of every topic of this network, as Kafka holds them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(prefix)]
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        isolation_level="read_uncommitted",
        enable_auto_commit=False,
    )
    await consumer.start()
    blobs: list[bytes] = []
    try:
        while batch := await consumer.getmany(timeout_ms=2000):
            for record in (r for part in batch.values() for r in part):
                blobs.extend(
                    [
                        record.key or b"",
                        record.value or b"",
                        *(v for _, v in record.headers),
                        *(k.encode() for k, _ in record.headers),
                    ]
                )
    finally:
        await consumer.stop()
    return blobs


async def operator_views(network: Network, token: str) -> list[str]:
    """Every page and JSON answer the monitor gives an operator, and the dispatcher's view for operators."""
    monitor = f"http://127.0.0.1:{network.monitor.port}"
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=monitor, headers=auth, timeout=30) as client:
        pages = [
            (await client.get(path)).text
            for path in (
                "/dashboard",
                "/v1/overview",
                "/v1/flow",
                "/v1/decisions",
                "/v1/lag",
                "/v1/dead-letters",
                "/v1/reviews",
                "/v1/alerts/unacknowledged",
                "/openapi.json",
            )
        ]
        dispatcher = f"http://127.0.0.1:{network.dispatcher.port}"
        pages.append((await client.get(f"{dispatcher}/v1/alerts/unacknowledged")).text)
    return pages


async def test_marker_in_every_field_is_nowhere_but_in_the_recipients_inbox(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    marker = f"MRK{uuid.uuid4().hex[:12]}"
    prefix = f"seal{uuid.uuid4().hex[:8]}."
    network_file = network_copy(tmp_path, prefix=prefix)
    network = load_network(network_file)
    data_dir = tmp_path / "var"
    up = maillage(
        "up",
        "--network",
        str(network_file),
        "--bootstrap",
        kafka_bootstrap,
        "--data-dir",
        str(data_dir),
        env={},
        log=tmp_path / "up.log",
    )
    try:
        wait_ready(f"http://127.0.0.1:{network.gateway.port}", up, timeout=90)
        for port in (*(a.port for a in network.agencies), network.dispatcher.port, network.monitor.port):
            wait_ready(f"http://127.0.0.1:{port}", up, timeout=30)
        dirs = KeyDirs(private=data_dir / "keys" / "private", public=data_dir / "keys" / "public")
        refuge, cpas, police = (client_of(network, a, dirs) for a in ("refuge-liege", "cpas-seraing", "zp-meuse"))
        subject = new_subject_ref()
        assert (
            refuge.post(
                "/v1/consents",
                json={
                    "subject_ref": subject,
                    "categories": ["identity", "contact", "children", "narrative"],
                    "recipients": ["cpas-seraing"],
                    "purposes": ["referral"],
                    "notice_version": "2026-09",
                    "notice_language": "fr",
                },
            ).status_code
            == 201
        )
        referral = refuge.post(
            "/v1/referrals",
            json={
                "subject_ref": subject,
                "subject_role": "victim",
                "recipient": "cpas-seraing",
                "reason": "other",
                "reason_comment": f"{marker}reason",
                "data": everything_marked(marker),
            },
        ).json()["event_id"]
        alert = refuge.post(
            "/v1/alerts",
            json={
                "subject_ref": subject,
                "subject_role": "victim",
                "severity": "imminent",
                "kind": "threat",
                "recipients": ["police"],
                "legal_basis": "danger",
                "justification": f"{marker}justification",
                "data": everything_marked(marker),
            },
        ).json()["event_id"]

        def arrived(client: httpx.Client, event_id: str) -> dict | None:  # type: ignore[type-arg]
            return next((i for i in client.get("/v1/inbox").json()["items"] if i["event_id"] == event_id), None)

        at_cpas = poll(lambda: arrived(cpas, referral))
        poll(lambda: arrived(police, alert))
        assert marker in at_cpas["data"]["narrative"], "the recipient does read the sealed data"
        response = cpas.post(
            f"/v1/referrals/{referral}/response",
            json={"decision": "declined", "decline_reason": "no_capacity", "comment": f"{marker}comment"},
        )
        assert response.status_code == 200
        poll(lambda: refuge.get(f"/v1/referrals/{referral}").json()["state"] == "declined")

        # A record no one can read, its value a person's details in clear: the monitor lists the dead
        # letter, never its value.
        stray = f"STRAY{uuid.uuid4().hex[:12]}"
        async with started_producer(kafka_bootstrap) as producer:
            await producer.send_and_wait(
                f"{prefix}maillage.submitted",
                f'{{"name": "{stray}"}}'.encode(),
                key=b"s-strayrecord",
                headers=[("ce_subject", stray.encode())],
            )
        operator = mint(
            Trust.load(dirs, network.operators.issuer).own,
            subject="operator",
            scopes=(Scope.MONITOR_READ, Scope.MONITOR_ACT),
        )

        async def monitored() -> bool:
            async with httpx.AsyncClient(headers={"Authorization": f"Bearer {operator}"}) as client:
                monitor = f"http://127.0.0.1:{network.monitor.port}"
                decisions = (await client.get(f"{monitor}/v1/decisions")).json()["items"]
                dead = (await client.get(f"{monitor}/v1/dead-letters")).json()["items"]
                return len(decisions) >= 2 and any(d["reason"] == "envelope" for d in dead)

        await eventually(monitored, timeout=60, what="the monitor to see the decisions and the dead letter")
        views = await operator_views(network, operator)
        scrape = {"Authorization": f"Bearer {scrape_secret(data_dir)}"}
        metrics = [
            httpx.get(f"http://127.0.0.1:{port}/metrics", headers=scrape).text
            for port in [
                network.gateway.port,
                *(a.port for a in network.agencies),
                network.dispatcher.port,
                network.monitor.port,
            ]
        ]
        records = await raw_records(kafka_bootstrap, prefix)
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)

    assert len(records) > 20 and all("maillage_" in m for m in metrics), "the places searched are not empty"
    assert not [r for r in records if marker.encode() in r], "Kafka holds only ciphertext of personal data"
    assert not [m for m in metrics if marker in m], "metrics carry no content"
    assert any("danger" in v for v in views) and any("envelope" in v for v in views), "operators see the flow"
    assert not [v for v in views if marker in v or stray in v], "operators never see content"
    logs = [p.read_bytes() for p in [tmp_path / "up.log", *data_dir.glob("*.log")]]
    assert len(logs) > 2 and not [log for log in logs if marker.encode() in log], "logs carry no content"
