"""Data-protection officers: the audit chain verified over the gateway's API and from a copy of its database,
and who received what about a person, metadata only — on a real broker and the gateway's real database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import select, update
from typer.testing import CliRunner, Result

from maillage.cli.main import app as cli
from maillage.core.audit import repository as audit_repository
from maillage.core.audit.models import AuditCheckpoint
from maillage.core.crypto.keys import GATEWAY
from maillage.core.crypto.tokens import GATEWAY_AUDIENCE, Scope, mint
from maillage.core.messaging.envelope import new_subject_ref
from maillage.core.polling import eventually
from maillage.core.storage.db import make_engine, session_factory, writer
from maillage.domain.audit import linked
from maillage.domain.events import AlertKind, AlertRaised, ReferralCreated, ReferralReason
from maillage.domain.vocabulary import LegalBasis, Purpose, Role, Severity
from maillage.gateway.app import create_app as create_gateway_app
from maillage.gateway.verification import Checkpoints, verify_chain
from tests.support import Pole, assert_problem, consent, decided, listening, refer

pytestmark = [pytest.mark.integration, pytest.mark.postgresql]

SENDER = "refuge-liege"
AUDIT_READ = (Scope.AUDIT_READ,)
# Values of ALL_EIGHT that must never appear in what an auditor reads.
PERSONAL_VALUES = [
    "Amina",
    "Testperson",
    "85010112345",
    "+32 470",
    "amina@example.org",
    "Rue du Refuge",
    "Noa",
    "LI.12.34.5678/26",
    "Bruises",
    "knife",
]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def run_cli(*args: str, env: dict[str, str] | None = None) -> Result:
    """The `maillage` command, in a thread: it runs its own event loop."""
    wide = {"COLUMNS": "250", **(env or {})}
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=wide)


def said(result: Result) -> str:
    return " ".join(result.output.split())


async def referrals_decided(pole: Pole, subject: str, *recipients: str) -> list[str]:
    events = [await refer(pole, SENDER, subject, to=to) for to in recipients]
    for event_id in events:
        await decided(pole, SENDER, event_id)
    return events


AUDIT = audit_repository.AUDIT


async def tamper(database: str, *, event_id: str) -> int:
    """Widen what one recipient is recorded as having received, as someone covering a leak might."""
    engine = make_engine(database)
    try:
        async with writer(engine).begin() as conn:
            [(seq,)] = (await conn.execute(select(AUDIT.c.seq).where(AUDIT.c.event_id == event_id))).all()
            await conn.execute(update(AUDIT).where(AUDIT.c.seq == seq).values(delivered=["identity", "location"]))
    finally:
        await engine.dispose()
    return int(seq)


async def rewrite(database: str, *, event_id: str) -> int:
    """The same cover-up done with care: the record widened, then its hash and every later record's link and
    hash computed again, so that a walk from the first record finds every link holding."""
    engine = make_engine(database)
    try:
        async with engine.connect() as conn:
            where = select(AUDIT.c.chain, AUDIT.c.seq).where(AUDIT.c.event_id == event_id)
            [(chain, seq)] = (await conn.execute(where)).all()
        walked = audit_repository.walk_chain(session_factory(engine), chain, after=0, end=10**9)
        records = [record async for chunk in walked for record in chunk]
        prev_hash = next(r["prev_hash"] for r in records if r["seq"] == seq)
        async with writer(engine).begin() as conn:
            for record in (r for r in records if r["seq"] >= seq):
                if record["seq"] == seq:
                    record["delivered"] = ["identity", "location"]
                link = linked(
                    {k: v for k, v in record.items() if k not in {"seq", "prev_hash", "hash", "chain"}},
                    seq=record["seq"],
                    prev_hash=prev_hash,
                    chain=chain,
                )
                await conn.execute(
                    update(AUDIT)
                    .where(AUDIT.c.chain == chain, AUDIT.c.seq == record["seq"])
                    .values(delivered=link["delivered"], prev_hash=link["prev_hash"], hash=link["hash"])
                )
                prev_hash = link["hash"]
    finally:
        await engine.dispose()
    return int(seq)


async def full_walk(gateway: httpx.AsyncClient, token: str) -> dict[str, Any]:
    """A full walk asked for, followed until done; its status."""
    started = await gateway.post("/v1/audit/walks", headers=bearer(token))
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    assert location == f"/v1/audit/walks/{started.json()['id']}"

    async def done() -> dict[str, Any] | None:
        status = (await gateway.get(location, headers=bearer(token))).json()
        return status if status["state"] != "running" else None

    return await eventually(done, what="the full walk's report")


async def test_an_altered_audit_record_is_named_by_a_full_walk_the_api_and_the_cli(pole: Pole) -> None:
    gateway = await pole.start_gateway()
    await pole.start_agency(SENDER)
    subject = new_subject_ref()
    await consent(
        pole,
        SENDER,
        subject,
        to=["cpas-seraing", "chr-citadelle"],
        categories=["identity", "contact", "health", "narrative"],
    )
    events = await referrals_decided(pole, subject, "cpas-seraing", "chr-citadelle", "zp-meuse", "cpas-seraing")
    token = pole.token("cpas-seraing", AUDIT_READ)
    database = pole.database_url("gateway")

    whole = (await gateway.get("/v1/audit/verify", headers=bearer(token))).json()
    assert whole == {
        "records": 4,
        "walked": 4,  # no checkpoint yet: from the first record
        "complete": True,
        "chains": 1,  # one subject: one partition, one chain
        "intact": True,
        "first_broken": None,
        "policy_sha256s": [pole.gateway_settings().policy.sha256],
        "last_full_walk": None,
    }
    again = (await gateway.get("/v1/audit/verify", headers=bearer(token))).json()
    assert again == {**whole, "walked": 0}, "the second verification walks on from the signed checkpoint"
    untouched = await run_cli("audit", "verify", "--database", database)
    assert untouched.exit_code == 0, untouched.output
    assert "4 audit records: intact" in said(untouched)

    seq = await tamper(database, event_id=events[1])

    # The edit kept every hash as it was, before the checkpoint: only a walk from the first record sees it.
    assert (await gateway.get("/v1/audit/verify", headers=bearer(token))).json()["intact"] is True
    walk = await full_walk(gateway, token)
    assert walk["state"] == "done" and walk["records_done"] == 4
    assert walk["report"]["intact"] is False and walk["report"]["first_broken"]["seq"] == seq
    broken = (await gateway.get("/v1/audit/verify", headers=bearer(token))).json()
    assert broken["records"] == 4 and broken["intact"] is False, "a full walk's finding stays in every answer"
    assert broken["first_broken"]["seq"] == seq
    assert broken["first_broken"]["event_id"] == events[1]
    assert broken["last_full_walk"]["id"] == walk["id"] and broken["last_full_walk"]["intact"] is False
    engine = make_engine(database)
    try:
        offline = await verify_chain(session_factory(engine), chunk=1)
    finally:
        await engine.dispose()
    assert offline.model_dump(include={"records", "chains", "intact", "first_broken"}) == {
        k: broken[k] for k in ("records", "chains", "intact", "first_broken")
    }
    from_copy = await run_cli("audit", "verify", "--database", database)
    assert from_copy.exit_code == 1, from_copy.output
    chain = broken["first_broken"]["chain"]
    assert f"First broken record: chain {chain}, seq {seq}, event {events[1]}," in said(from_copy)


async def test_a_chain_rewritten_to_hide_an_edit_is_named_at_the_last_checkpoint(pole: Pole) -> None:
    gateway = await pole.start_gateway()
    await pole.start_agency(SENDER)
    subject = new_subject_ref()
    await consent(pole, SENDER, subject, to=["cpas-seraing"], categories=["identity", "contact", "narrative"])
    events = await referrals_decided(pole, subject, "cpas-seraing", "zp-meuse", "cpas-seraing")
    token = pole.token("cpas-seraing", AUDIT_READ)
    assert (await gateway.get("/v1/audit/verify", headers=bearer(token))).json()["intact"] is True
    database = pole.database_url("gateway")

    await rewrite(database, event_id=events[0])

    # Every link holds from the first record: the rewrite fooled a walk that trusts the database alone...
    engine = make_engine(database)
    try:
        assert (await verify_chain(session_factory(engine))).intact is True
    finally:
        await engine.dispose()
    # ...not the gateway, whose signed checkpoint names the last link as it was.
    report = (await gateway.get("/v1/audit/verify", headers=bearer(token))).json()
    assert report["intact"] is False and report["walked"] == 0
    assert report["first_broken"]["event_id"] == events[-1], "the checkpoint's link no longer hashes as signed"


async def test_a_checkpoint_not_signed_by_the_gateway_is_ignored_and_the_chain_walked_from_its_start(
    pole: Pole,
) -> None:
    gateway = await pole.start_gateway()
    await pole.start_agency(SENDER)
    subject = new_subject_ref()
    await consent(pole, SENDER, subject, to=["cpas-seraing"], categories=["identity", "contact", "narrative"])
    events = await referrals_decided(pole, subject, "cpas-seraing", "cpas-seraing")
    token = pole.token("cpas-seraing", AUDIT_READ)
    assert (await gateway.get("/v1/audit/verify", headers=bearer(token))).json()["walked"] == 2
    database = pole.database_url("gateway")
    seq = await tamper(database, event_id=events[1])
    engine = make_engine(database)
    try:
        async with writer(engine).begin() as conn:
            # Moved past the edit, as someone hiding it would: the signature no longer covers it.
            await conn.execute(update(AuditCheckpoint).values(seq=seq + 5))
    finally:
        await engine.dispose()

    report = (await gateway.get("/v1/audit/verify", headers=bearer(token))).json()
    assert report["walked"] == 2 and report["intact"] is False
    assert report["first_broken"]["seq"] == seq


async def test_a_full_walk_runs_on_schedule_and_one_asked_for_while_it_runs_is_the_same(pole: Pole) -> None:
    gateway = await pole.start_gateway(audit_full_walk_hours=1 / 3600)  # every second
    await pole.start_agency(SENDER)
    subject = new_subject_ref()
    await consent(pole, SENDER, subject, to=["cpas-seraing"], categories=["identity", "contact", "narrative"])
    await referrals_decided(pole, subject, "cpas-seraing")
    token = pole.token("cpas-seraing", AUDIT_READ)

    async def walked_in_full() -> dict[str, Any] | None:
        report = (await gateway.get("/v1/audit/verify", headers=bearer(token))).json()
        last = report["last_full_walk"]
        return report if last is not None and last["records"] == 1 else None

    report = await eventually(walked_in_full, what="a scheduled full walk")
    assert report["intact"] is True and report["last_full_walk"]["intact"] is True

    missing = await gateway.get(f"/v1/audit/walks/{uuid.uuid4()}", headers=bearer(token))
    assert_problem(missing, 404)
    assert_problem(await gateway.get("/v1/audit/walks/not-an-id", headers=bearer(token)), 422)
    assert_problem(await gateway.post("/v1/audit/walks"), 401)


async def test_disclosures_list_who_received_what_about_a_person_and_nothing_of_the_person(pole: Pole) -> None:
    url = await pole.stack.enter_async_context(listening(create_gateway_app(pole.gateway_settings())))
    await pole.start_agency(SENDER)
    subject, someone_else = new_subject_ref(), new_subject_ref()
    for person in (subject, someone_else):
        await consent(
            pole, SENDER, person, to=["cpas-seraing"], categories=["identity", "contact", "location", "narrative"]
        )
    shared, _denied = await referrals_decided(pole, subject, "cpas-seraing", "zp-meuse")
    await referrals_decided(pole, someone_else, "cpas-seraing")
    [decision] = (await decided(pole, SENDER, shared))["recipients"]
    token = pole.token(SENDER, AUDIT_READ)  # the sender's data-protection officer answers for its disclosures

    async with httpx.AsyncClient(base_url=url, headers=bearer(token)) as auditor:
        response = await auditor.get(f"/v1/disclosures/{subject}")
        nobody = (await auditor.get(f"/v1/disclosures/{new_subject_ref()}")).json()
    async with httpx.AsyncClient(base_url=url, headers=bearer(pole.token("praxis-meuse", AUDIT_READ))) as other:
        # Another agency learns nothing of who holds this person's data (a shelter, say).
        elsewhere = (await other.get(f"/v1/disclosures/{subject}")).json()
    assert elsewhere["disclosures"] == []

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["subject_ref"] == subject
    [line] = report["disclosures"]  # not the police zone, which had no consent; not the other person's
    assert line["event_id"] == shared
    assert line["recipient"] == "cpas-seraing" and line["recipient_name"]
    assert line["sector"] == "social" and line["legal_basis"] == "consent" and line["review"] is False
    assert line["event_type"] == "maillage.referral.created.v1" and line["source"] == SENDER
    assert line["delivered"] == ["contact", "identity", "narrative"] == decision["delivered"]
    assert line["removed"] == decision["removed"] and line["removed"]["location"] == "above_ceiling"
    assert line["recorded_at"]
    assert nobody == {"subject_ref": nobody["subject_ref"], "disclosures": [], "next_cursor": None}
    assert not [value for value in PERSONAL_VALUES if value in response.text]

    env = {"MAILLAGE_TOKEN": token}
    listed = await run_cli("disclosures", subject, "--gateway", url, env=env)
    assert listed.exit_code == 0, listed.output
    assert f"Disclosures about {subject}" in said(listed) and "(cpas-seraing)" in said(listed)
    assert "zp-meuse" not in listed.output and token not in listed.output
    none_listed = await run_cli("disclosures", new_subject_ref(), "--gateway", url, env=env)
    assert none_listed.exit_code == 0 and "No disclosure recorded" in said(none_listed)
    verified = await run_cli("audit", "verify", "--gateway", url, env=env)
    assert verified.exit_code == 0 and "3 audit records: intact" in said(verified)
    walked = await run_cli("audit", "verify", "--full", "--gateway", url, env=env)
    assert walked.exit_code == 0 and "3 audit records: intact" in said(walked)
    assert "Last full walk from the first record" in said(await run_cli("audit", "verify", "--gateway", url, env=env))


async def test_the_audit_api_needs_an_audit_read_token_from_an_agency_of_the_network(pole: Pole) -> None:
    gateway = await pole.start_gateway()
    subject = new_subject_ref()
    routes = ["/v1/audit/verify", f"/v1/disclosures/{subject}"]
    # Meant for the gateway, but without the scope; and a partner system's token, meant for its own service.
    wrong_scope = bearer(
        mint(pole.trust("cpas-seraing").own, subject="dpo", scopes=(Scope.SUBJECT_ERASE,), audience=GATEWAY_AUDIENCE)
    )
    elsewhere = bearer(pole.token("cpas-seraing", (Scope.INBOX_READ, Scope.EVENTS_WRITE)))
    right = bearer(pole.token("cpas-seraing", AUDIT_READ))

    for route in routes:
        anonymous = await gateway.get(route)
        assert_problem(anonymous, 401)
        assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
        assert_problem(await gateway.get(route, headers={"Authorization": "Bearer not-a-token"}), 401)
        forbidden: dict[str, Any] = assert_problem(await gateway.get(route, headers=wrong_scope), 403)
        assert "audit:read" in forbidden["detail"]
        assert "Audience" in assert_problem(await gateway.get(route, headers=elsewhere), 401)["detail"]
        assert (await gateway.get(route, headers=right)).status_code == 200

    assert_problem(await gateway.get("/v1/disclosures/short", headers=right), 422)
    assert_problem(await gateway.get("/v1/disclosures/has%20a%20space%20in%20it", headers=right), 422)
    # The check comes before the path is even looked at: no token learns nothing about the format.
    assert_problem(await gateway.get("/v1/disclosures/short"), 401)


async def test_a_batch_mixing_a_referral_and_a_danger_alert_keeps_the_chain_intact_and_who_raised_it(
    pole: Pole, producer: AIOKafkaProducer
) -> None:
    # Both written before the gateway starts, so that it decides them in one batch: the referral's records
    # come first and carry no `raised_by`, the alert's carry it.
    sender = pole.trust("refuge-liege")
    subject = new_subject_ref()
    at = datetime.now(UTC)
    referral = sender.sealed_event(
        ReferralCreated(identity={"given_name": "Amina"}, reason=ReferralReason.SHELTER),
        subject_ref=subject,
        role=Role.VICTIM,
        basis=LegalBasis.CONSENT,
        purpose=Purpose.REFERRAL,
        at=at,
        recipients=("cpas-seraing",),
        pole="liege",
    )
    alert = sender.sealed_event(
        AlertRaised(
            identity={"given_name": "Amina"},
            severity=Severity.IMMINENT,
            kind=AlertKind.THREAT,
            justification="He is on his way.",
            raised_by="0123456789abcdef",
        ),
        subject_ref=subject,
        role=Role.VICTIM,
        basis=LegalBasis.DANGER,
        purpose=Purpose.SAFETY_PLANNING,
        at=at,
        recipients=("police",),
        pole="liege",
    )
    for envelope in (referral, alert):
        key, value, headers = envelope.to_kafka()
        await producer.send_and_wait(pole.topics.submitted, value, key=key, headers=headers)

    gateway = await pole.start_gateway()
    token = {"Authorization": f"Bearer {pole.token('refuge-liege', (Scope.AUDIT_READ,))}"}
    await pole.read_until(
        pole.topics.audit, lambda records: {r.key for r in records} >= {referral.id.encode(), alert.id.encode()}
    )

    report = (await gateway.get("/v1/audit/verify", headers=token)).json()
    assert (report["intact"], report["records"]) == (True, 2)
    engine = make_engine(pole.gateway_settings().db_url())
    async with session_factory(engine)() as session:
        [stored] = await audit_repository.of_event(session, alert.id)
    await engine.dispose()
    assert stored["raised_by"] == "0123456789abcdef", "who raised the alert is kept in the gateway's database"


async def test_a_verification_stops_at_its_limit_and_the_next_walks_on_from_where_it_stopped(pole: Pole) -> None:
    await pole.start_gateway()
    await pole.start_agency(SENDER)
    subject = new_subject_ref()
    await consent(pole, SENDER, subject, to=["cpas-seraing"], categories=["identity", "contact", "narrative"])
    await referrals_decided(pole, subject, "cpas-seraing", "zp-meuse", "cpas-seraing", "zp-meuse", "cpas-seraing")
    engine = make_engine(pole.database_url("gateway"))
    checkpoints = Checkpoints(pole.trust(GATEWAY))
    try:
        sessions = session_factory(engine)
        steps = [await verify_chain(sessions, checkpoints=checkpoints, limit=2, chunk=1) for _ in range(3)]
        again = await verify_chain(sessions, checkpoints=checkpoints, limit=2)
    finally:
        await engine.dispose()
    assert [(s.walked, s.records, s.complete, s.intact) for s in steps] == [
        (2, 2, False, True),
        (2, 4, False, True),
        (1, 5, True, True),
    ]
    assert (again.walked, again.records, again.complete) == (0, 5, True)
