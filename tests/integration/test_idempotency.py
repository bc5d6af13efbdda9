"""Idempotency: a repeated request is one event; a redelivered Kafka record is stored once."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from maillage.core.messaging.envelope import new_subject_ref
from tests.support import (
    Pole,
    assert_problem,
    consent,
    has_event,
    header_of,
    inbox_of,
    received,
    refer,
)

pytestmark = pytest.mark.integration


def referral_body(subject: str, *, narrative: str = "Needs a shelter place tonight.") -> dict[str, Any]:
    return {
        "subject_ref": subject,
        "subject_role": "victim",
        "recipient": "cpas-seraing",
        "reason": "shelter",
        "data": {"identity": {"given_name": "Amina"}, "narrative": narrative},
    }


def ids_of(records: list[Any]) -> Counter[str | None]:
    return Counter(header_of(r, "ce_id") for r in records)


async def test_same_referral_posted_twice_with_one_idempotency_key_is_one_event(pole: Pole) -> None:
    client = await pole.start_agency("refuge-liege")
    subject = new_subject_ref()
    key = {"Idempotency-Key": "case-4711-referral-1"}

    first = await client.post("/v1/referrals", json=referral_body(subject), headers=key)
    second = await client.post("/v1/referrals", json=referral_body(subject), headers=key)

    assert first.status_code == second.status_code == 202, second.text
    assert first.json() == second.json()
    event_id = first.json()["event_id"]
    # A later referral about the same person goes to the same partition, after any duplicate.
    marker = await refer(pole, "refuge-liege", subject, to="cpas-seraing")
    records = await pole.read_until(pole.topics.submitted, has_event(marker))
    assert ids_of(records) == {event_id: 1, marker: 1}


async def test_idempotency_key_reused_with_another_body_is_refused(pole: Pole) -> None:
    client = await pole.start_agency("refuge-liege")
    subject = new_subject_ref()
    key = {"Idempotency-Key": "case-4711-referral-2"}
    first = await client.post("/v1/referrals", json=referral_body(subject), headers=key)

    reused = await client.post("/v1/referrals", json=referral_body(subject, narrative="Another story."), headers=key)

    body = assert_problem(reused, 422)
    assert body["type"].endswith("/idempotency-key-reused")
    marker = await refer(pole, "refuge-liege", subject, to="cpas-seraing")
    records = await pole.read_until(pole.topics.submitted, has_event(marker))
    assert ids_of(records) == {first.json()["event_id"]: 1, marker: 1}


async def test_redelivered_kafka_record_is_stored_once_in_the_inbox(pole: Pole) -> None:
    await pole.start_gateway()
    await pole.start_agency("refuge-liege")
    await pole.start_agency("cpas-seraing")
    subject = new_subject_ref()
    await consent(pole, "refuge-liege", subject, to=["cpas-seraing"], categories=["identity", "narrative"])
    event_id = await refer(pole, "refuge-liege", subject, to="cpas-seraing")
    await received(pole, "cpas-seraing", event_id)
    deliver = pole.topics.deliver("cpas-seraing")
    [delivered] = await pole.read_until(deliver, has_event(event_id))

    producer = AIOKafkaProducer(bootstrap_servers=pole.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            deliver, delivered.value, key=delivered.key, headers=list(delivered.headers), partition=delivered.partition
        )
    finally:
        await producer.stop()

    # The redelivered copy sits before this later referral in the same partition: once this one is in,
    # the copy has been handled too.
    marker = await refer(pole, "refuge-liege", subject, to="cpas-seraing")
    await received(pole, "cpas-seraing", marker)
    assert ids_of(await pole.read_until(deliver, has_event(marker)))[event_id] == 2
    inbox = Counter(i["event_id"] for i in await inbox_of(pole["cpas-seraing"]))
    assert inbox == {event_id: 1, marker: 1}


async def test_concurrent_posts_with_one_idempotency_key_make_one_event(pole: Pole) -> None:
    client = await pole.start_agency("refuge-liege")
    subject = new_subject_ref()
    key = {"Idempotency-Key": "case-4711-referral-3"}

    answers = await asyncio.gather(
        *(client.post("/v1/referrals", json=referral_body(subject), headers=key) for _ in range(5))
    )

    assert {a.status_code for a in answers} == {202}, [a.text for a in answers]
    assert len({a.json()["event_id"] for a in answers}) == 1
    marker = await refer(pole, "refuge-liege", subject, to="cpas-seraing")
    records = await pole.read_until(pole.topics.submitted, has_event(marker))
    assert ids_of(records) == {answers[0].json()["event_id"]: 1, marker: 1}
