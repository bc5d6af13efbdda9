"""What the gateway cannot process goes to maillage.dlq with its reason, and the stream carries on."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from maillage.core.messaging import bus
from maillage.core.messaging.envelope import Envelope, Headers, new_event_id, new_subject_ref, source_of
from maillage.domain.events import EventType
from maillage.domain.vocabulary import LegalBasis, Purpose, Role
from tests.support import Pole, consent, decided, has_event, header_of, inbox_of, received, refer

pytestmark = pytest.mark.integration


def referral_envelope(subject: str, *, event_id: str | None = None) -> Envelope:
    return Envelope(
        id=event_id or new_event_id(),
        source=source_of("refuge-liege"),
        type=EventType.REFERRAL_CREATED,
        time=datetime.now(UTC),
        subject=subject,
        subjectrole=Role.VICTIM,
        legalbasis=LegalBasis.CONSENT,
        purpose=Purpose.REFERRAL,
        recipient="cpas-seraing",
        data=b"",
    )


def submitted_referral(
    pole: Pole,
    plaintext: bytes,
    *,
    subject: str,
    signer: str = "refuge-liege",
    to: str = "gateway",
    event_id: str | None = None,
) -> tuple[bytes, bytes, Headers]:
    """A referral sealed to `to` and signed by `signer`, as refuge-liege's outbox (or a forger) writes it."""
    envelope = referral_envelope(subject, event_id=event_id)
    return pole.trust(signer).seal_and_sign(envelope, plaintext, to=to).to_kafka()


def dropping(headers: Headers, name: str) -> Headers:
    return [(k, v) for k, v in headers if k != name]


def replacing(headers: Headers, name: str, value: bytes) -> Headers:
    return [(k, value if k == name else v) for k, v in headers]


async def start(pole: Pole) -> str:
    await pole.start_gateway()
    await pole.start_agency("refuge-liege")
    await pole.start_agency("cpas-seraing")
    subject = new_subject_ref()
    await consent(pole, "refuge-liege", subject, to=["cpas-seraing"], categories=["identity", "narrative"])
    return subject


async def test_malformed_records_are_dead_lettered_with_their_reason_and_later_referrals_still_flow(
    pole: Pole,
    producer: AIOKafkaProducer,
) -> None:
    subject = await start(pole)
    key, value, headers = submitted_referral(pole, b'{"identity": {"given_name": "Amina"}}', subject=subject)
    not_json = submitted_referral(pole, b"{identity: Amina", subject=subject)
    off_schema = submitted_referral(
        pole, orjson.dumps({"risk": {"level": "apocalyptic"}, "religion": "x"}), subject=subject
    )
    by_another = submitted_referral(pole, b"{}", subject=subject, signer="cpas-seraing")
    wrong_key = submitted_referral(pole, b'{"identity": {"given_name": "Amina"}}', subject=subject, to="cpas-seraing")
    bad: dict[str, tuple[bytes, Headers, str]] = {
        "garbage bytes": (b"\x00\xff\xfe not an event", [], "envelope"),
        "no ce_ headers": (value, [], "envelope"),
        "ce_ headers missing the legal basis": (value, dropping(headers, "ce_legalbasis"), "envelope"),
        "unknown event type": (value, replacing(headers, "ce_type", b"maillage.gossip.v1"), "envelope"),
        "subject in clear": (value, replacing(headers, "ce_subject", b"Amina Testperson"), "envelope"),
        "unsigned": (value, dropping(dropping(headers, "ce_sig"), "ce_sigkid"), "signature"),
        "data altered after signing": (value[:-1] + bytes([value[-1] ^ 1]), headers, "signature"),
        "recipient altered after signing": (value, replacing(headers, "ce_recipient", b"police"), "signature"),
        "signed by another agency than its source": (by_another[1], by_another[2], "signature"),
        "sealed to a key the gateway does not hold": (wrong_key[1], wrong_key[2], "sealing"),
        "data not JSON": (not_json[1], not_json[2], "schema"),
        "data against the schema": (off_schema[1], off_schema[2], "schema"),
    }
    where: dict[tuple[int, int], str] = {}
    for name, (bad_value, bad_headers, _) in bad.items():
        sent = await producer.send_and_wait(pole.topics.submitted, bad_value, key=key, headers=bad_headers)
        where[(sent.partition, sent.offset)] = name

    later_id = await refer(pole, "refuge-liege", subject, to="cpas-seraing")

    assert (await received(pole, "cpas-seraing", later_id))["data"]["narrative"]
    letters = await pole.read_until(pole.topics.dlq, lambda records: len(records) >= len(bad))
    assert len(letters) == len(bad)
    for letter in letters:
        origin = (int(header_of(letter, "dlq_partition") or -1), int(header_of(letter, "dlq_offset") or -1))
        name = where[origin]
        assert header_of(letter, "dlq_reason") == bad[name][2], name
        assert header_of(letter, "dlq_topic") == pole.topics.submitted
        assert letter.value == bad[name][0]  # kept whole, so an operator can replay it
    assert len(await inbox_of(pole["cpas-seraing"])) == 1


async def test_rejected_event_is_reported_to_its_sender(pole: Pole, producer: AIOKafkaProducer) -> None:
    subject = await start(pole)
    key, value, headers = submitted_referral(pole, b'{"risk": {"level": "apocalyptic"}}', subject=subject)
    event_id = dict(headers)["ce_id"]

    await producer.send_and_wait(pole.topics.submitted, value, key=key, headers=headers)

    statuses = await pole.read_until(pole.topics.status("refuge-liege"), lambda rs: any(r.key == event_id for r in rs))
    [status] = [r for r in statuses if r.key == event_id]
    assert header_of(status, "maillage_source") == "refuge-liege"  # only the sender's service takes it
    [line] = orjson.loads(status.value)["recipients"]
    assert (line["outcome"], line["reason"]) == ("rejected", "schema")


async def delivered_referral(pole: Pole, subject: str) -> Any:
    """A referral sent through the API, delivered, and its record as it sits on maillage.submitted."""
    event_id = await refer(
        pole,
        "refuge-liege",
        subject,
        to="cpas-seraing",
        data={"identity": {"given_name": "Amina"}, "narrative": "First account."},
    )
    await received(pole, "cpas-seraing", event_id)
    [original] = [
        r
        for r in await pole.read_until(pole.topics.submitted, has_event(event_id))
        if header_of(r, "ce_id") == event_id
    ]
    return original


async def test_event_id_replayed_with_other_content_is_dead_lettered_as_replay(
    pole: Pole,
    producer: AIOKafkaProducer,
) -> None:
    subject = await start(pole)
    original = await delivered_referral(pole, subject)
    event_id = header_of(original, "ce_id")
    assert event_id is not None
    # Validly signed by the sender itself, so only the id betrays it: same id, other content.
    _, other, other_headers = submitted_referral(
        pole,
        orjson.dumps({"identity": {"given_name": "Amina"}, "narrative": "A different account."}),
        subject=subject,
        event_id=event_id,
    )

    await producer.send_and_wait(
        pole.topics.submitted, other, key=original.key, headers=other_headers, partition=original.partition
    )

    [letter] = await pole.read_until(pole.topics.dlq, lambda records: len(records) >= 1)
    assert (header_of(letter, "dlq_reason"), letter.key) == ("replay", event_id.encode())
    later_id = await refer(pole, "refuge-liege", subject, to="cpas-seraing")
    await received(pole, "cpas-seraing", later_id)
    [item] = [i for i in await inbox_of(pole["cpas-seraing"]) if i["event_id"] == event_id]
    assert item["data"]["narrative"] == "First account."
    [line] = (await decided(pole, "refuge-liege", event_id))["recipients"]
    assert line["outcome"] == "delivered"


@pytest.mark.parametrize("signed_again", [False, True], ids=["as-published", "signed-again-in-another-batch"])
async def test_same_event_published_again_is_not_delivered_twice(
    pole: Pole,
    producer: AIOKafkaProducer,
    signed_again: bool,
) -> None:
    subject = await start(pole)
    original = await delivered_referral(pole, subject)
    event_id = header_of(original, "ce_id")
    headers = list(original.headers)
    assert header_of(original, "ce_sigpath") is not None  # the relay signed it in a batch
    if signed_again:
        # The relay crashed after sending, before marking its rows: it reads them again and signs them in a
        # batch of another shape, so the copy's signature and path differ from the original's.
        refuge = pole.trust("refuge-liege")
        envelope = Envelope.from_kafka(key=original.key, value=original.value, headers=headers)
        other = referral_envelope(subject)
        _, resigned = refuge.sign_batch([other, replace(envelope, sig=None, sigpath=None)])
        headers = resigned.to_kafka()[2]
        assert bus.header(headers, "ce_sig") != header_of(original, "ce_sig")

    await producer.send_and_wait(
        pole.topics.submitted, original.value, key=original.key, headers=headers, partition=original.partition
    )

    # A later referral about the same person is decided after the copy (one partition per subject).
    later_id = await refer(pole, "refuge-liege", subject, to="cpas-seraing")
    await received(pole, "cpas-seraing", later_id)
    deliveries = await pole.read_until(pole.topics.deliver("cpas-seraing"), has_event(later_id))
    assert Counter(header_of(r, "ce_id") for r in deliveries) == {event_id: 1, later_id: 1}
    letters = await pole.read_until(pole.topics.dlq, lambda records: True)
    assert letters == []  # an outbox retry is not an attack


async def test_recipient_refuses_a_delivery_not_signed_by_the_gateway(
    pole: Pole,
    producer: AIOKafkaProducer,
) -> None:
    subject = await start(pole)
    # Someone with write access to the delivery topic, holding refuge-liege's keys, writes straight to cpas.
    forged = referral_envelope(subject)
    key, value, headers = (
        pole.trust("refuge-liege").seal_and_sign(forged, b'{"narrative": "Trust me."}', to="cpas-seraing").to_kafka()
    )

    await producer.send_and_wait(pole.topics.deliver("cpas-seraing"), value, key=key, headers=headers)

    # On the recipient's own dead-letter topic: only its principal writes there.
    [letter] = await pole.read_until(pole.topics.dead_letters_of("cpas-seraing"), lambda records: len(records) >= 1)
    assert header_of(letter, "dlq_reason") == "signature"
    assert header_of(letter, "dlq_topic") == pole.topics.deliver("cpas-seraing")
    later_id = await refer(pole, "refuge-liege", subject, to="cpas-seraing")
    await received(pole, "cpas-seraing", later_id)
    assert [i["event_id"] for i in await inbox_of(pole["cpas-seraing"])] == [later_id]
