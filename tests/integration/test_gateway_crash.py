"""The gateway killed mid-stream and started again: every recipient has every event exactly once."""

from __future__ import annotations

import os
import signal
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from maillage.cli.kafka_local import free_port
from maillage.core.crypto.trust import Trust
from maillage.core.messaging.envelope import Envelope, new_event_id, new_subject_ref, source_of
from maillage.domain.events import ConsentGranted, EventPayload, ReferralCreated, ReferralReason
from maillage.domain.vocabulary import Category, LegalBasis, Purpose, Role
from tests.processes import maillage, wait_ready
from tests.support import Pole, eventually

pytestmark = pytest.mark.integration

EVENTS = 4000
RECIPIENTS = ("cpas-seraing", "ecoute-namur")
SENDER = "refuge-liege"


def submitted(sender: Trust, payload: EventPayload, *, subject: str, recipient: str = "") -> Envelope:
    """Sealed to the gateway and signed, exactly as refuge-liege's outbox publishes it."""
    envelope = Envelope(
        id=new_event_id(),
        source=source_of(sender.owner),
        type=payload.event_type,
        time=datetime.now(UTC),
        subject=subject,
        subjectrole=Role.VICTIM,
        legalbasis=LegalBasis.CONSENT,
        purpose=Purpose.REFERRAL,
        recipient=recipient,
        data=b"",
    )
    plaintext = orjson.dumps(payload.model_dump(mode="json", exclude_none=True))
    return sender.seal_and_sign(envelope, plaintext, to="gateway")


async def produce_stream(pole: Pole) -> set[str]:
    """Consents for a few subjects, then EVENTS referrals alternating between two recipients."""
    producer = AIOKafkaProducer(bootstrap_servers=pole.bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    subjects = [new_subject_ref() for _ in range(50)]
    sender = pole.trust("refuge-liege")
    referral_ids: set[str] = set()
    try:
        for subject in subjects:
            consent = ConsentGranted(
                consent_id=uuid.uuid4(),
                categories=(Category.IDENTITY, Category.CONTACT),
                recipients=RECIPIENTS,
                purposes=(Purpose.REFERRAL,),
            )
            key, value, headers = submitted(sender, consent, subject=subject).to_kafka()
            await producer.send(pole.topics.submitted, value, key=key, headers=headers)
        for i in range(EVENTS):
            referral = ReferralCreated(
                identity={"given_name": f"P{i}"}, contact={"phone": "+32 4 000"}, reason=ReferralReason.SHELTER
            )
            envelope = submitted(sender, referral, subject=subjects[i % len(subjects)], recipient=RECIPIENTS[i % 2])
            key, value, headers = envelope.to_kafka()
            await producer.send(pole.topics.submitted, value, key=key, headers=headers)
            referral_ids.add(envelope.id)
        await producer.flush()
    finally:
        await producer.stop()
    return referral_ids


def count_ids(records: list) -> Counter[str]:  # type: ignore[type-arg]
    return Counter(dict(r.headers)["ce_id"].decode() for r in records)


async def test_gateway_killed_mid_stream_delivers_every_event_exactly_once(pole: Pole, tmp_path: Path) -> None:
    referral_ids = await produce_stream(pole)
    env = {
        "MAILLAGE_KAFKA_BOOTSTRAP": pole.bootstrap,
        "MAILLAGE_TOPIC_PREFIX": pole.prefix,
        "MAILLAGE_DATA_DIR": str(tmp_path / "var"),
        "MAILLAGE_TRANSACTIONAL_ID": f"{pole.prefix}gw",
    }
    port = free_port()
    first = maillage("serve", "gateway", "--port", str(port), env=env, log=tmp_path / "gateway.log")
    try:
        wait_ready(f"http://127.0.0.1:{port}", first)

        async def some_delivered() -> bool:
            records = await pole.read_topic(pole.topics.deliver(RECIPIENTS[0]), expect=200, timeout=2)
            return len(records) >= 200

        await eventually(some_delivered, timeout=60, what="the gateway to be mid-stream")
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()

    half_done = 0
    for recipient in RECIPIENTS:
        half_done += len(await pole.read_until(pole.topics.deliver(recipient), lambda _: True, timeout=60))
    assert half_done < EVENTS, "the gateway must be killed before it has finished"

    second = maillage("serve", "gateway", "--port", str(port), env=env, log=tmp_path / "gateway.log")
    try:
        wait_ready(f"http://127.0.0.1:{port}", second)
        # Each partition read to its end once every referral is there: a duplicate written before is seen too.
        per_recipient = {
            r: await pole.read_until(pole.topics.deliver(r), lambda records: len(records) >= EVENTS // 2, timeout=120)
            for r in RECIPIENTS
        }
        statuses = await pole.read_topic(pole.topics.status(SENDER), expect=EVENTS + 50, timeout=60)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)

    delivered = Counter[str]()
    for records in per_recipient.values():
        delivered.update(count_ids(records))
    assert set(delivered) == referral_ids, "every referral reaches its recipient"
    assert max(delivered.values()) == 1, "no referral is delivered twice"
    reported = Counter(r.key.decode() for r in statuses)
    assert set(referral_ids) <= set(reported) and max(reported.values()) == 1
