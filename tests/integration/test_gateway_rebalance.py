"""A rebalance the gateway cannot finish at once — a cluster just back answers the committed-offset read with an
error, the database misses the state other gateways left — is finished by the gateway itself before it decides:
it is not ready meanwhile, then referrals flow again, none lost, none twice. aiokafka only logs a rebalance
listener's failure and keeps the assignment, so a half-done rebalance used to stop the gateway for good
(`maillage chaos --smoke` in CI: the whole cluster stopped 20 s, nothing delivered after it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from sqlalchemy.exc import OperationalError

from maillage.core.messaging.envelope import new_subject_ref
from maillage.core.polling import eventually
from maillage.gateway.app import GatewayRunning, running_gateway
from tests.support import Pole, consent, inbox_of, received, refer

pytestmark = pytest.mark.integration

REFUGE, CPAS = "refuge-liege", "cpas-seraing"
FAILURES = 3  # of each step, in a row: the first set-up in the rebalance, then the loop's next tries


class FailingFirst:
    """`call` failing its first `times` calls with what `error()` makes, then doing as it did."""

    def __init__(self, call: Callable[..., Awaitable[Any]], error: Callable[[], Exception], times: int) -> None:
        self.call, self.error, self.left, self.failed = call, error, times, 0

    async def __call__(self, *args: Any) -> Any:
        if self.left:
            self.left -= 1
            self.failed += 1
            raise self.error()
        return await self.call(*args)


async def test_a_rebalance_that_fails_half_way_is_finished_before_the_gateway_decides_again(pole: Pole) -> None:
    settings = pole.gateway_settings()
    gateway: GatewayRunning = await pole.stack.enter_async_context(running_gateway(settings))
    await pole.start_agency(REFUGE)
    await pole.start_agency(CPAS)
    subject = new_subject_ref()
    await consent(pole, REFUGE, subject, to=[CPAS], categories=["identity", "narrative"])
    before = [await refer(pole, REFUGE, subject, to=CPAS) for _ in range(3)]
    for event_id in before:
        await received(pole, CPAS, event_id)
    assert await gateway.ready()

    producers = gateway.loop.producers
    consumer = producers.kafka_consumer
    # Another member joins the gateways' group: the gateway gives partitions up, then gets them all back when it
    # leaves — that second assignment meets the errors.
    intruder = AIOKafkaConsumer(settings.topics.submitted, bootstrap_servers=pole.bootstrap, group_id=settings.group_id)
    await intruder.start()
    try:

        async def gave_partitions_up() -> bool:
            return len(producers.owned) < 3

        await eventually(gave_partitions_up, timeout=60, what="the gateway to give partitions up")
    finally:
        committed = FailingFirst(consumer.committed, lambda: KafkaError("coordinator not available"), FAILURES)
        load = FailingFirst(producers.on_assigned, lambda: OperationalError("SELECT", {}, Exception()), FAILURES)
        consumer.committed = committed
        producers.on_assigned = load
        await intruder.stop()

    async def all_partitions_back() -> bool:
        return len(producers.owned) == 3

    await eventually(all_partitions_back, timeout=60, what="the gateway to get every partition back")
    after = [await refer(pole, REFUGE, subject, to=CPAS) for _ in range(5)]
    for event_id in after:
        await received(pole, CPAS, event_id)

    assert committed.failed == FAILURES and load.failed == FAILURES, "each step failed, then was done again"
    assert await gateway.ready()
    copies = Counter(item["event_id"] for item in await inbox_of(pole[CPAS]))
    assert all(copies[event_id] == 1 for event_id in before + after)
