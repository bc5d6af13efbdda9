"""Notices to past recipients: a withdrawal of consent reaches every agency that received data under it, whose
service stores the notice (inbox and webhook) and acknowledges it; the sender sees each receipt. The same
mechanism has recipients erase what they received (a rejected danger disclosure)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import orjson
import pytest
from aiokafka.partitioner import murmur2

from maillage.core.audit import repository as audit_repository
from maillage.core.crypto.tokens import Scope
from maillage.core.messaging.bus import send_batched
from maillage.core.messaging.envelope import new_subject_ref
from maillage.core.polling import eventually
from maillage.core.storage.db import unit_of_work
from maillage.core.webhooks.egress import TableResolver
from maillage.domain.events import (
    ConsentGranted,
    ConsentWithdrawn,
    DisclosureReviewed,
    EventType,
    Identity,
    ReferralCreated,
    ReferralReason,
    ReviewDecision,
)
from maillage.domain.vocabulary import Category, LegalBasis, Purpose, Role
from maillage.gateway import notices
from maillage.gateway.app import GatewayRunning, running_gateway
from maillage.gateway.batch import Batch
from maillage.gateway.outgoing import Outbound, Outgoing, Share
from maillage.gateway.verification import verify_chain
from tests.support import ALL_EIGHT, Pole, categories_in, consent, decided, deciding, inbox_of, received, refer
from tests.webhooks import (
    Receiver,
    bound_socket,
    make_certificates,
    register,
    serve_https,
    webhook_network,
    webhooks_table,
)
from tests.webhooks import deliveries as webhook_deliveries

pytestmark = [pytest.mark.integration, pytest.mark.postgresql]

REFUGE, CPAS, CHR, SOS = "refuge-liege", "cpas-seraing", "chr-citadelle", "sos-enfants"
NOTICE = EventType.NOTICE_ISSUED.value
DATA = {
    "identity": {"given_name": "Amina"},
    "contact": {"phone": "+32 470 12 34 56"},
    "health": {"notes": "Bruises on both arms."},
}


def notices_in(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in items if i["type"] == NOTICE]


async def fate_with_receipts(pole: Pole, event_id: str, *, count: int) -> dict[str, Any]:
    """The sender's view of its event once `count` notices it caused are acknowledged."""

    async def probe() -> dict[str, Any] | None:
        fate: dict[str, Any] = (await pole[REFUGE].get(f"/v1/events/{event_id}")).json()
        acknowledged = [n for n in fate.get("notices", []) if n["acknowledged_at"] is not None]
        return fate if len(acknowledged) >= count else None

    return await eventually(probe, timeout=30, what=f"{count} acknowledged notices of {event_id}")


async def test_withdrawal_notice_reaches_every_past_recipient_and_is_acknowledged(pole: Pole, tmp_path: Path) -> None:
    certs, sock, hook_receiver = make_certificates(tmp_path / "certs"), bound_socket(), Receiver()
    pole.network_file = webhook_network(tmp_path / "net", webhooks_table(certs, sock))
    gateway = await pole.start_gateway()
    for agency in (REFUGE, CHR, SOS):
        await pole.start_agency(agency)
    await pole.start_agency(CPAS, resolver=TableResolver())
    subject = new_subject_ref()
    withdrawn_consent = await consent(
        pole, REFUGE, subject, to=[CPAS, CHR], categories=["identity", "contact", "health"]
    )
    await consent(pole, REFUGE, subject, to=[SOS], categories=["identity"])  # another consent, kept
    async with serve_https(hook_receiver, certs, sock) as url:
        hook = await register(pole, CPAS, url)
        hook_receiver.secret = hook["secret"]
        to_cpas = await refer(pole, REFUGE, subject, to=CPAS, data=DATA)
        to_chr = await refer(pole, REFUGE, subject, to=CHR, data=DATA)
        to_sos = await refer(pole, REFUGE, subject, to=SOS, data=DATA)
        for agency, event_id in ((CPAS, to_cpas), (CHR, to_chr), (SOS, to_sos)):
            await received(pole, agency, event_id)

        withdrawal = (await pole[REFUGE].post(f"/v1/consents/{withdrawn_consent['consent_id']}/withdraw")).json()

        fate = await fate_with_receipts(pole, withdrawal["event_id"], count=2)
        [at_cpas] = notices_in(await inbox_of(pole[CPAS]))
        await eventually(
            lambda: asyncio.sleep(0, any(at_cpas["event_id"].encode() in body for body in hook_receiver.accepted)),
            timeout=30,
            what="the notice at cpas' webhook",
        )

    by_recipient = {n["recipient"]: n for n in fate["notices"]}
    assert set(by_recipient) == {CPAS, CHR}, "only the agencies that received data under the consent"
    for agency, event_id, categories in (
        (CPAS, to_cpas, ["contact", "identity"]),
        (CHR, to_chr, ["contact", "health", "identity"]),
    ):
        receipt = by_recipient[agency]
        assert (receipt["kind"], receipt["events"], receipt["categories"]) == (
            "consent_withdrawn",
            [event_id],
            categories,
        )
        assert receipt["delivered_at"] is not None and receipt["acknowledged_at"] is not None
        assert (receipt["erase"], receipt["erased"]) == (False, 0)
        [notice] = notices_in(await inbox_of(pole[agency]))
        assert notice["data"] == {
            "notice_id": receipt["notice_id"],
            "kind": "consent_withdrawn",
            "cause": withdrawal["event_id"],
            "events": [event_id],
            "categories": categories,
            "erase": False,
            "holder": "agency",
            "misrouted": [],
            "disallowed": [],
        }
        assert (notice["subject_ref"], notice["source_agency"]) == (subject, REFUGE)
        assert categories_in(notice["data"]) == set(), "which events and categories, never a value"
    assert {i["event_id"] for i in await inbox_of(pole[CPAS])} >= {to_cpas}, "stop using it: not erased"
    # After the withdrawal, one more referral to sos-enfants under the consent it kept: behind any notice
    # to it on the same partition, so its arrival proves no notice went there.
    later = await refer(pole, REFUGE, subject, to=SOS, data=DATA)
    await received(pole, SOS, later)
    assert notices_in(await inbox_of(pole[SOS])) == []
    token = {"Authorization": f"Bearer {pole.token(REFUGE, (Scope.AUDIT_READ,))}"}
    verified = (await gateway.get("/v1/audit/verify", headers=token)).json()
    assert verified["intact"] is True and verified["first_broken"] is None
    report = (await gateway.get(f"/v1/disclosures/{subject}", headers=token)).json()["disclosures"]
    notified = {line["recipient"]: line for line in report if line["outcome"] == "notified"}
    assert set(notified) == {CPAS, CHR}
    assert notified[CPAS]["consents"] == [withdrawn_consent["consent_id"]]


# --- the erase branch: what a rejected danger disclosure will trigger -------------------------------------


async def reject_directly(started: GatewayRunning, pole: Pole, *, subject: str, alert_id: str) -> str:
    """What the review of a danger disclosure will do in the gateway's batch when it is rejected, driven
    here directly: notices to erase the alert, published with the gateway's own producer. Returns the id of
    the (never published) review event that caused them."""
    review = DisclosureReviewed(alert_id=alert_id, decision=ReviewDecision.REJECTED, reviewer="b" * 16)
    cause = pole.trust(REFUGE).sealed_event(
        review,
        subject_ref=subject,
        role=Role.VICTIM,
        basis=LegalBasis.DANGER,
        purpose=Purpose.SAFETY_PLANNING,
        at=started.loop.gateway.clock.now(),
    )
    gateway, loop = started.loop.gateway, started.loop
    partition = (murmur2(subject.encode()) & 0x7FFFFFFF) % 3  # the subject's partition of the submitted topic
    async with loop.producers.turn:  # between two of the loop's batches, as one of them would
        async with unit_of_work(gateway.sessions) as session:
            batch = Batch(session=session, decided={}, out=Outbound(gateway.topics), chain=partition)
            await notices.notify_rejected_disclosure(gateway, batch, cause=cause, alert_id=alert_id)
            await audit_repository.append(session, batch.audit)
        sealed = await loop.crypto.seal(batch.out.records)
        producer = loop.producers.producers[partition]
        async with producer.transaction():
            futures = await send_batched(producer, ((o.topic, o.key, o.value, o.headers) for o in sealed))
    await asyncio.gather(*futures)
    return cause.id


async def test_rejected_disclosure_notice_has_each_recipient_erase_what_it_received(pole: Pole, tmp_path: Path) -> None:
    certs, sock, hook_receiver = make_certificates(tmp_path / "certs"), bound_socket(), Receiver()
    pole.network_file = webhook_network(tmp_path / "net", webhooks_table(certs, sock))
    started = await pole.stack.enter_async_context(running_gateway(pole.gateway_settings()))
    await pole.start_agency(REFUGE)
    await pole.start_agency("zp-meuse", resolver=TableResolver())
    await pole.start_agency(SOS)
    subject = new_subject_ref()
    async with serve_https(hook_receiver, certs, sock) as url:
        hook = await register(pole, "zp-meuse", url)
        hook_receiver.secret = hook["secret"]
        raised = await pole[REFUGE].post(
            "/v1/alerts",
            json={
                "subject_ref": subject,
                "subject_role": "victim",
                "severity": "imminent",
                "kind": "custody_release",
                "recipients": ["zp-meuse", SOS],
                "legal_basis": "danger",
                "justification": "He was released this morning and is on his way to her flat.",
                "data": ALL_EIGHT,
            },
        )
        alert_id = raised.json()["event_id"]
        await decided(pole, REFUGE, alert_id)
        for agency in ("zp-meuse", SOS):
            await received(pole, agency, alert_id)
        await eventually(
            lambda: asyncio.sleep(0, bool(hook_receiver.accepted)), timeout=30, what="the alert at the webhook"
        )

        cause = await reject_directly(started, pole, subject=subject, alert_id=alert_id)

        receipts = await pole.read_until(pole.topics.audit, lambda records: len(acknowledged(records)) == 2)
    assert {r["source"]: r["notice"]["erased"] for r in acknowledged(receipts)} == {"zp-meuse": 1, SOS: 1}
    for agency in ("zp-meuse", SOS):
        inbox = await inbox_of(pole[agency])
        assert alert_id not in {i["event_id"] for i in inbox}, "the alert is erased"
        [notice] = notices_in(inbox)
        assert (notice["data"]["kind"], notice["data"]["erase"]) == ("disclosure_rejected", True)
        assert (notice["data"]["cause"], notice["data"]["events"]) == (cause, [alert_id])
    pushed = {d["event_id"] for d in await webhook_deliveries(pole, "zp-meuse", hook["id"])}
    assert alert_id not in pushed, "its webhook delivery, whose body carried the alert, is erased too"
    [at_police] = notices_in(await inbox_of(pole["zp-meuse"]))
    assert pushed == {at_police["event_id"]}, "the notice is pushed to the partner system instead"
    assert (await verify_chain(started.sessions)).intact


def acknowledged(records: list[Any]) -> list[dict[str, Any]]:
    decoded = [orjson.loads(r.value) for r in records]
    return [r for r in decoded if r["event_type"] == EventType.NOTICE_ACKNOWLEDGED.value]


# --- exactly once: a batch decided again after its Kafka transaction aborted ------------------------------


def notice_shares(outgoing: list[Outgoing | Share]) -> list[Share]:
    return [o for o in outgoing if isinstance(o, Share) and o.envelope.type is EventType.NOTICE_ISSUED]


async def test_a_withdrawal_read_again_after_an_aborted_transaction_sends_the_same_notices(
    pole: Pole, tmp_path: Path
) -> None:
    settings = pole.gateway_settings()
    refuge, subject, consent_id, now = pole.trust(REFUGE), new_subject_ref(), uuid4(), datetime.now(UTC)
    common: dict[str, Any] = {
        "subject_ref": subject,
        "basis": LegalBasis.CONSENT,
        "purpose": Purpose.REFERRAL,
        "at": now,
    }
    granted = ConsentGranted(
        consent_id=consent_id, categories=(Category.IDENTITY,), recipients=(CPAS,), purposes=(Purpose.REFERRAL,)
    )
    referral = ReferralCreated(identity=Identity(given_name="Amina"), reason=ReferralReason.SHELTER)
    envelopes = [
        refuge.sealed_event(granted, role=Role.OTHER, **common),
        refuge.sealed_event(referral, role=Role.VICTIM, recipients=(CPAS,), pole="liege", **common),
        refuge.sealed_event(ConsentWithdrawn(consent_id=consent_id), role=Role.OTHER, **common),
    ]
    async with deciding(pole) as gateway:
        records = gateway.records(envelopes)
        first = await gateway.process(records)
        again = await gateway.process(records[2:])

    [sent], [resent] = notice_shares(first), notice_shares(again)
    assert (resent.envelope.id, resent.envelope.recipient) == (sent.envelope.id, CPAS), "the same notice, not another"
    assert orjson.loads(resent.plaintext) == orjson.loads(sent.plaintext)
    audited = [o for o in again if isinstance(o, Outgoing) and o.topic == settings.topics.audit]
    assert [orjson.loads(o.value)["event_type"] for o in audited] == [NOTICE]
    told = [o for o in again if isinstance(o, Outgoing) and o.topic == settings.topics.status(REFUGE)]
    assert any(orjson.loads(o.value)["notices"] for o in told), "the sender is told again that it was delivered"
