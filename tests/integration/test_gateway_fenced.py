"""The gateway's transactional producer left unusable by Kafka — fenced, as after a whole cluster's outage the
coordinator may do to a transaction it timed out — is replaced: referrals flow again, none twice. A transaction
that cannot end well — a share refused, a decision failed — is aborted, and its batch decided again."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from maillage.core.messaging import bus
from maillage.core.messaging.envelope import new_subject_ref
from maillage.core.polling import eventually
from maillage.gateway.app import running_gateway
from maillage.gateway.handlers import partition_transactional_id
from maillage.gateway.services import Gateway
from maillage.gateway.settings import GatewaySettings
from tests.support import Pole, consent, inbox_of, received, refer

pytestmark = pytest.mark.integration

REFUGE, CPAS = "refuge-liege", "cpas-seraing"


async def consented(pole: Pole) -> tuple[GatewaySettings, str]:
    """The gateway and both agencies running, a person's consent to the CPAS registered: settings and person."""
    settings = pole.gateway_settings()
    await pole.stack.enter_async_context(running_gateway(settings))
    await pole.start_agency(REFUGE)
    await pole.start_agency(CPAS)
    subject = new_subject_ref()
    await consent(pole, REFUGE, subject, to=[CPAS], categories=["identity", "narrative"])
    return settings, subject


async def test_a_gateway_whose_producer_was_fenced_takes_a_new_one_and_delivers_again(pole: Pole) -> None:
    settings, subject = await consented(pole)
    await received(pole, CPAS, await refer(pole, REFUGE, subject, to=CPAS))

    # Another producer initialised with each partition's transactional id bumps its epoch: every transaction
    # the gateway's producers try from then on ends in ProducerFenced, a state aiokafka never leaves.
    for partition in range(3):
        usurper = AIOKafkaProducer(
            bootstrap_servers=pole.bootstrap,
            transactional_id=partition_transactional_id(settings.transactional_prefix, partition),
        )
        await usurper.start()
        await usurper.stop()

    after = [await refer(pole, REFUGE, subject, to=CPAS) for _ in range(5)]
    for event_id in after:
        await received(pole, CPAS, event_id)
    copies = Counter(item["event_id"] for item in await inbox_of(pole[CPAS]))
    assert all(copies[event_id] == 1 for event_id in after)


async def test_a_share_kafka_refuses_leaves_its_referral_undecided_until_it_can_be_written(
    pole: Pole, caplog: pytest.LogCaptureFixture
) -> None:
    """aiokafka commits a transaction once its sends have ended, failed or not: a share refused for good would
    leave a committed transaction, offsets past the referral, and the referral lost. The gateway waits for
    every send inside the transaction, so the refusal aborts it and the referral is decided again later."""
    settings, subject = await consented(pole)
    deliver = settings.topics.deliver(CPAS)
    await limit_records(pole, deliver, max_bytes=200)  # every share to the CPAS is larger: refused, not retried

    event_id = await refer(pole, REFUGE, subject, to=CPAS)

    async def refused() -> bool:
        return any(r.getMessage() == "batch not published, reading it again" for r in caplog.records)

    await eventually(refused, what="a refused transaction")
    await limit_records(pole, deliver, max_bytes=1_048_588)  # Kafka's default again

    await received(pole, CPAS, event_id)
    assert Counter(i["event_id"] for i in await inbox_of(pole[CPAS]))[event_id] == 1


async def test_a_batch_whose_decision_failed_is_decided_again_its_offsets_not_committed(
    pole: Pole, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's transaction begins, and its consumed offsets join it, while the batch is being decided: a
    decision that fails (the gateway's database out of reach, say) aborts them with it — committed, they would
    pass over the referral, lost."""
    _, subject = await consented(pole)
    process = Gateway.process
    failures = [ConnectionError("the gateway's database is out of reach")]

    async def failing_once(self: Gateway, *args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await process(self, *args, **kwargs)

    monkeypatch.setattr(Gateway, "process", failing_once)
    event_id = await refer(pole, REFUGE, subject, to=CPAS)

    await received(pole, CPAS, event_id)
    assert not failures
    assert any(r.getMessage() == "batch not published, reading it again" for r in caplog.records)
    assert Counter(i["event_id"] for i in await inbox_of(pole[CPAS]))[event_id] == 1


async def limit_records(pole: Pole, topic: str, *, max_bytes: int) -> None:
    await bus.ensure_topics(
        pole.bootstrap,
        [topic],
        partitions=3,
        replication_factor=1,
        min_insync_replicas=1,
        configs={topic: {"max.message.bytes": str(max_bytes)}},
    )
