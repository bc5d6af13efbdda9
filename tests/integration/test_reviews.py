"""Art. 458bis: a danger disclosure is reviewed at the agency that raised it, by a second professional who reads
the justification there; the decision goes into the gateway's audit chain and the monitor's counts, and neither
the gateway nor the monitor ever holds the justification or any other payload value."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import inspect, text

from maillage.core.crypto.tokens import Principal, Scope, mint, staff_ref
from maillage.core.messaging.envelope import Envelope, new_subject_ref
from maillage.core.polling import eventually
from maillage.core.storage.db import make_engine
from maillage.domain.events import DisclosureReviewed, ReviewDecision
from maillage.domain.vocabulary import LegalBasis, Purpose, Role
from tests.monitor import as_operator, monitor, operator_token
from tests.support import ALL_EIGHT, Pole, assert_problem, decided, has_event, header_of, received

pytestmark = [pytest.mark.integration, pytest.mark.postgresql]

RAISER = "refuge-liege"
RAISER_SYSTEM = f"{RAISER}-case-system"  # who the default client's token names: the one who raises the alert


def marked(marker: str) -> tuple[str, dict[str, Any]]:
    """A justification and a payload each carrying `marker` in free text, in every part that has some."""
    justification = f"He was released this morning and texted he is on his way to her flat ({marker})."
    data = {
        **ALL_EIGHT,
        "identity": {**ALL_EIGHT["identity"], "family_name": f"Testperson-{marker}"},
        "location": {**ALL_EIGHT["location"], "address": f"Rue {marker} 1, 4000 Liège"},
        "risk": {**ALL_EIGHT["risk"], "factors": ["threats", marker]},
        "narrative": f"Left home after he threatened her ({marker}).",
    }
    return justification, data


async def raise_danger_alert(pole: Pole, *, justification: str, data: dict[str, Any]) -> str:
    response = await pole[RAISER].post(
        "/v1/alerts",
        json={
            "subject_ref": new_subject_ref(),
            "subject_role": "victim",
            "severity": "imminent",
            "kind": "custody_release",
            "recipients": ["police"],
            "legal_basis": "danger",
            "justification": justification,
            "data": data,
        },
    )
    assert response.status_code == 202, response.text
    return str(response.json()["event_id"])


def professional(pole: Pole, who: str) -> dict[str, str]:
    """The headers of a professional of the raising agency, at its service, with the review scope only."""
    token = mint(pole.trust(RAISER).own, subject=who, scopes=(Scope.DISCLOSURE_REVIEW,))
    return {"Authorization": f"Bearer {token}"}


def ref_of(who: str) -> str:
    return staff_ref(Principal(agency=RAISER, subject=who, scopes=frozenset()))


async def audit_records(pole: Pole, alert_id: str) -> list[dict[str, Any]]:
    """The audit records the gateway published about the alert, its decision included, once it is there."""

    def with_decision(records: list[Any]) -> bool:
        return any(orjson.loads(r.value).get("alert_id") == alert_id for r in records)

    records = await pole.read_until(pole.topics.audit, with_decision)
    found = [orjson.loads(r.value) for r in records]
    return [r for r in found if alert_id in (r["event_id"], r.get("alert_id"))]


async def chain_verified(pole: Pole, gateway: httpx.AsyncClient) -> dict[str, Any]:
    token = pole.token(RAISER, (Scope.AUDIT_READ,))
    response = await gateway.get("/v1/audit/verify", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


async def reviews_counted(client: httpx.AsyncClient, **expected: int) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get("/v1/reviews")).json()
        return body if all(body[k] == v for k, v in expected.items()) else None

    return await eventually(probe, what=f"the monitor counting reviews {expected}")


async def holds_marker(pole: Pole, service: str, marker: bytes) -> list[str]:
    """Where `service`'s database holds `marker`: on SQLite, the files (after a checkpoint: the main file, its
    -wal and -shm), byte by byte; on PostgreSQL, the tables, row by row."""
    if pole.databases(service) is None:
        database = pole.data_dir / f"{service}.db"
        with sqlite3.connect(database) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        files = [database, *database.parent.glob(database.name + "-*")]
        assert database.exists()
        return [f.name for f in files if marker in f.read_bytes()]
    engine = make_engine(pole.database_url(service))
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
            rows = {t: repr((await conn.execute(text(f'select * from "{t}"'))).all()) for t in tables}
    finally:
        await engine.dispose()
    return [t for t, held in rows.items() if marker.decode() in held]


async def start(pole: Pole) -> httpx.AsyncClient:
    gateway = await pole.start_gateway()
    await pole.start_agency(RAISER)
    await pole.start_agency("zp-meuse")
    return gateway


async def test_danger_disclosure_is_reviewed_at_the_raising_agency_not_by_operators(pole: Pole) -> None:
    gateway = await start(pole)
    marker = f"MARK{uuid4().hex}"
    justification, data = marked(marker)
    async with (
        monitor(pole) as running,
        as_operator(running, operator_token(pole)) as operators,
    ):
        agency, raiser, second = (
            pole[RAISER],
            professional(pole, RAISER_SYSTEM),
            professional(pole, f"{RAISER}-worker-2"),
        )
        alert_id = await raise_danger_alert(pole, justification=justification, data=data)
        item = await received(pole, "zp-meuse", alert_id)
        assert item["data"]["identity"]["family_name"] == f"Testperson-{marker}"  # the danger disclosure happened
        await decided(pole, RAISER, alert_id)
        await reviews_counted(operators, pending=1, approved=0, rejected=0)

        # Without the review scope, the agency's own partner system sees no review.
        assert_problem(await agency.get("/v1/reviews"), 403)
        assert_problem(await agency.get(f"/v1/reviews/{alert_id}"), 403)
        # The one who raised it cannot review it, even with the scope.
        refused = assert_problem(
            await agency.post(f"/v1/reviews/{alert_id}", json={"decision": "approved"}, headers=raiser), 403
        )
        assert refused["type"].endswith("/self-review")
        assert_problem(await agency.get(f"/v1/reviews/{uuid4()}", headers=second), 404)

        # A second professional of the raising agency reads the justification there, and approves.
        [line] = (await agency.get("/v1/reviews", params={"pending": True}, headers=second)).json()["items"]
        assert (line["alert_id"], line["status"]) == (alert_id, "pending")
        shown = (await agency.get(f"/v1/reviews/{alert_id}", headers=second)).json()
        assert shown["justification"] == justification
        assert (shown["severity"], shown["kind"], shown["recipients"]) == ("imminent", "custody_release", ["police"])
        assert shown["raised_by"] == ref_of(RAISER_SYSTEM)
        assert shown["disclosed_to"] == ["zp-meuse"]
        approved = await agency.post(
            f"/v1/reviews/{alert_id}",
            json={"decision": "approved", "comment": f"Danger is real ({marker})."},
            headers=second,
        )
        assert approved.status_code == 200, approved.text
        review = approved.json()
        assert (review["status"], review["reviewer"]) == ("approved", ref_of(f"{RAISER}-worker-2"))
        assert_problem(await agency.post(f"/v1/reviews/{alert_id}", json={"decision": "rejected"}, headers=second), 409)
        assert (await agency.get("/v1/reviews", params={"pending": True}, headers=second)).json()["items"] == []

        # The decision is recorded by the gateway, in the audit chain, which stays intact.
        fate = await decided(pole, RAISER, review["review_event_id"])
        assert (fate["state"], [(r["recipient"], r["outcome"]) for r in fate["recipients"]]) == (
            "decided",
            [("gateway", "recorded")],
        )
        [decision] = [r for r in await audit_records(pole, alert_id) if r.get("decision")]
        assert (decision["event_id"], decision["decision"]) == (review["review_event_id"], "approved")
        assert decision["reviewer"] == ref_of(f"{RAISER}-worker-2")
        report = await chain_verified(pole, gateway)
        assert (report["records"], report["intact"]) == (2, True)  # the disclosure to zp-meuse, and the decision

        # Operators count it approved: no button, no justification, nobody named.
        counts = await reviews_counted(operators, pending=0, approved=1, rejected=0)
        assert set(counts) == {"pending", "approved", "rejected", "oldest_pending_since", "oldest_pending_age_seconds"}
        assert (await operators.post(f"/v1/reviews/{alert_id}/approve")).status_code in (404, 405)

    # Byte by byte: the marker is at the raising agency (where the review is), nowhere at the gateway or monitor.
    assert await holds_marker(pole, f"agency-{RAISER}", marker.encode())
    assert await holds_marker(pole, "gateway", marker.encode()) == []
    assert await holds_marker(pole, "monitor", marker.encode()) == []


async def test_rejected_danger_disclosure_is_recorded_and_counted_as_rejected(pole: Pole) -> None:
    gateway = await start(pole)
    justification, data = marked(f"MARK{uuid4().hex}")
    async with (
        monitor(pole) as running,
        as_operator(running, operator_token(pole)) as operators,
    ):
        agency, second = pole[RAISER], professional(pole, f"{RAISER}-worker-2")
        alert_id = await raise_danger_alert(pole, justification=justification, data=data)
        await received(pole, "zp-meuse", alert_id)
        rejected = await agency.post(
            f"/v1/reviews/{alert_id}",
            json={"decision": "rejected", "comment": "Not imminent: he is abroad."},
            headers=second,
        )
        assert rejected.status_code == 200, rejected.text
        review = rejected.json()
        assert review["status"] == "rejected"
        listed = (await agency.get("/v1/reviews", headers=second)).json()["items"]
        assert [(r["alert_id"], r["status"]) for r in listed] == [(alert_id, "rejected")]

        fate = await decided(pole, RAISER, review["review_event_id"])
        assert [(r["recipient"], r["outcome"]) for r in fate["recipients"]] == [("gateway", "recorded")]
        [decision] = [r for r in await audit_records(pole, alert_id) if r.get("decision")]
        assert (decision["decision"], decision["alert_id"]) == ("rejected", alert_id)
        assert (await chain_verified(pole, gateway))["intact"] is True
        await reviews_counted(operators, pending=0, approved=0, rejected=1)

        # Each recipient is told to erase what it received under the alert; its service erases and confirms,
        # and the reviewer's agency sees the receipt on the decision's event.
        async def erased_and_confirmed() -> dict[str, Any] | None:
            fate = (await agency.get(f"/v1/events/{review['review_event_id']}")).json()
            done = [n for n in fate["notices"] if n["acknowledged_at"] is not None]
            return done[0] if done else None

        notice = await eventually(erased_and_confirmed, what="zp-meuse's receipt of the erase notice")
        assert (notice["recipient"], notice["kind"], notice["events"]) == (
            "zp-meuse",
            "disclosure_rejected",
            [alert_id],
        )
        assert (notice["erase"], notice["erased"]) == (True, 1)
        inbox = (await pole["zp-meuse"].get("/v1/inbox", params={"limit": 500})).json()["items"]
        assert alert_id not in [i["event_id"] for i in inbox], "the rejected disclosure is erased at the recipient"
        assert [i["type"] for i in inbox] == ["maillage.notice.issued.v1"], "the notice itself stays, with no data"
        assert (await chain_verified(pole, gateway))["intact"] is True

        # The data-protection officer's listing shows the disclosure, the decision and the erase notice.
        token = pole.token(RAISER, (Scope.AUDIT_READ,))
        subject = (await agency.get(f"/v1/events/{alert_id}")).json()["subject_ref"]
        listed = await gateway.get(f"/v1/disclosures/{subject}", headers={"Authorization": f"Bearer {token}"})
        lines = [(d["recipient"], d["outcome"], d["decision"]) for d in listed.json()["disclosures"]]
        assert lines == [
            ("zp-meuse", "filtered", None),
            ("gateway", "recorded", "rejected"),
            ("zp-meuse", "notified", None),
        ]


def review_signed_by(pole: Pole, agency: str, alert_id: str, *, subject: str, by: str) -> Envelope:
    """A decision sealed to the gateway and validly signed by `agency`'s key, written past its service's checks."""
    payload = DisclosureReviewed(alert_id=UUID(alert_id), decision=ReviewDecision.APPROVED, reviewer=by)
    return pole.trust(agency).sealed_event(
        payload,
        subject_ref=subject,
        role=Role.VICTIM,
        basis=LegalBasis.DANGER,
        purpose=Purpose.SAFETY_PLANNING,
        at=datetime.now(UTC),
    )


async def refusal(pole: Pole, producer: AIOKafkaProducer, envelope: Envelope) -> str | None:
    """Why the gateway refused the event, as its dead letter says."""
    key, value, headers = envelope.to_kafka()
    await producer.send_and_wait(pole.topics.submitted, value, key=key, headers=headers)
    letters = await pole.read_until(pole.topics.dlq, has_event(envelope.id))
    [letter] = [r for r in letters if header_of(r, "ce_id") == envelope.id]
    return header_of(letter, "dlq_reason")


async def test_the_gateway_records_one_decision_per_alert_by_a_second_professional_of_its_agency(
    pole: Pole, producer: AIOKafkaProducer
) -> None:
    gateway = await start(pole)
    alert_id = await raise_danger_alert(pole, justification="He is on his way.", data=ALL_EIGHT)
    await decided(pole, RAISER, alert_id)
    subject = (await pole[RAISER].get(f"/v1/events/{alert_id}")).json()["subject_ref"]

    # Past the agency's own checks (its key, written straight to the broker): the raiser approving its own
    # alert, another agency deciding on it, a decision about another subject.
    assert (
        await refusal(
            pole, producer, review_signed_by(pole, RAISER, alert_id, subject=subject, by=ref_of(RAISER_SYSTEM))
        )
        == "self_review"
    )
    assert (
        await refusal(pole, producer, review_signed_by(pole, "zp-meuse", alert_id, subject=subject, by="0" * 16))
        == "unknown_alert"
    )
    assert (
        await refusal(pole, producer, review_signed_by(pole, RAISER, alert_id, subject=new_subject_ref(), by="0" * 16))
        == "unknown_alert"
    )

    second = professional(pole, f"{RAISER}-worker-2")
    approved = await pole[RAISER].post(f"/v1/reviews/{alert_id}", json={"decision": "approved"}, headers=second)
    await decided(pole, RAISER, approved.json()["review_event_id"])
    # One decision per alert, even from a third professional whose agency's service was bypassed.
    assert (
        await refusal(pole, producer, review_signed_by(pole, RAISER, alert_id, subject=subject, by="3" * 16))
        == "already_reviewed"
    )
    report = await chain_verified(pole, gateway)
    assert (report["records"], report["intact"]) == (2, True)
