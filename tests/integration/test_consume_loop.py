"""A service's consuming loop (`bus.consume_forever`): every record handed over at least once, its offsets
committed in the background while it reads on, the group's position at the end of what was handled — the
commit markers of transactions included — so that a restart brings back nothing already stored."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from maillage.core.messaging import bus
from maillage.core.messaging.bus import Record
from maillage.core.polling import eventually

pytestmark = pytest.mark.integration

PARTITIONS = 2


async def test_every_record_is_handled_and_the_group_commits_past_the_last_transaction(kafka_bootstrap: str) -> None:
    topic, group = await new_topic(kafka_bootstrap)
    handled: list[bytes] = []

    async def store(records: list[Record]) -> None:
        handled.extend(r.value or b"" for r in records)

    async with consuming(kafka_bootstrap, topic, group, store):
        sent = await send_in_transactions(kafka_bootstrap, topic, transactions=6, each=5)
        await eventually(lambda: all_handled(handled, sent), timeout=30, what="every record handled")
        await eventually(lambda: committed_at_end(kafka_bootstrap, topic, group), timeout=30, what="offsets at the end")

    assert sorted(handled) == sorted(sent)
    assert await read_again(kafka_bootstrap, topic, group) == [], "a restart brings back what was stored"


async def test_a_batch_its_handler_could_not_store_comes_again(kafka_bootstrap: str) -> None:
    topic, group = await new_topic(kafka_bootstrap)
    handled: list[bytes] = []
    failures = 0

    async def store_after_one_failure(records: list[Record]) -> None:
        nonlocal failures
        if failures == 0:
            failures += 1
            raise RuntimeError("database unavailable")
        handled.extend(r.value or b"" for r in records)

    async with consuming(kafka_bootstrap, topic, group, store_after_one_failure):
        sent = await send_in_transactions(kafka_bootstrap, topic, transactions=1, each=10)
        await eventually(lambda: all_handled(handled, sent), timeout=30, what="every record handled")
        await eventually(lambda: committed_at_end(kafka_bootstrap, topic, group), timeout=30, what="offsets at the end")

    assert failures == 1
    assert sorted(handled) == sorted(sent)


async def test_where_a_read_stands_includes_the_commit_marker_read_with_its_transaction(kafka_bootstrap: str) -> None:
    """One commit covers a transaction's records and its marker: none is left for the next idle poll to make."""
    topic, group = await new_topic(kafka_bootstrap)
    await send_in_transactions(kafka_bootstrap, topic, transactions=1, each=3)
    consumer = bus.consumer(kafka_bootstrap, topic, group_id=group)
    await consumer.start()
    try:
        batches: dict[TopicPartition, list[Record]] = {}
        while sum(len(records) for records in batches.values()) < 3:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                batches.setdefault(tp, []).extend(records)
        reached = await bus.read_to(consumer, batches)
        ends = await consumer.end_offsets(list(batches))
    finally:
        await consumer.stop()

    assert reached == ends
    assert all(reached[tp] == records[-1].offset + 2 for tp, records in batches.items()), "one marker each"


# --- helpers --------------------------------------------------------------------------------------


async def test_a_poll_that_found_records_waiting_takes_in_those_that_follow_within_its_window(
    kafka_bootstrap: str,
) -> None:
    """Under a steady flow, one batch (one transaction, one commit) for what arrives within the window."""
    topic, group = await new_topic(kafka_bootstrap)
    window = bus.BatchWindow(seconds=20, enough=6, waiting=20)  # any first poll counts as finding records waiting
    async with started(kafka_bootstrap, topic, group) as (consumer, producer):
        await send(producer, topic, [b"first-0", b"first-1", b"first-2"])
        polled = asyncio.create_task(window.poll(consumer, timeout_ms=20_000, max_records=100))
        await send(producer, topic, [b"then-0", b"then-1", b"then-2"])
        batches = await asyncio.wait_for(polled, timeout=15)

    [records] = batches.values()
    assert [r.value for r in records] == [b"first-0", b"first-1", b"first-2", b"then-0", b"then-1", b"then-2"]


async def test_a_record_at_a_quiet_pace_is_handed_over_without_waiting_for_the_window(kafka_bootstrap: str) -> None:
    """A lone record, or records the poll had to wait for, leave at once: the window would only add latency."""
    topic, group = await new_topic(kafka_bootstrap)
    window = bus.BatchWindow(seconds=60, enough=64)
    async with started(kafka_bootstrap, topic, group) as (consumer, producer):
        await send(producer, topic, [b"alone"])
        alone = await asyncio.wait_for(window.poll(consumer, timeout_ms=20_000, max_records=100), timeout=15)
        polled = asyncio.create_task(window.poll(consumer, timeout_ms=20_000, max_records=100))
        await asyncio.sleep(0)  # the poll is waiting before the records leave
        await send(producer, topic, [b"quiet-0", b"quiet-1"])
        waited_for = await asyncio.wait_for(polled, timeout=15)

    assert [r.value for records in alone.values() for r in records] == [b"alone"]
    assert [r.value for records in waited_for.values() for r in records] == [b"quiet-0", b"quiet-1"]


@contextlib.asynccontextmanager
async def started(bootstrap: str, topic: str, group: str) -> AsyncIterator[tuple[AIOKafkaConsumer, AIOKafkaProducer]]:
    consumer = bus.consumer(bootstrap, topic, group_id=group)
    producer = bus.producer(bootstrap)
    await consumer.start()
    await producer.start()
    try:
        await eventually(lambda: assigned(consumer), timeout=30, what="the consumer's partitions")
        yield consumer, producer
    finally:
        await producer.stop()
        await consumer.stop()


async def send(producer: AIOKafkaProducer, topic: str, values: list[bytes]) -> None:
    """One record batch, acknowledged: one key, so one partition, in this order."""
    await asyncio.gather(*await bus.send_batched(producer, [(topic, b"one-key", v, []) for v in values]))


async def new_topic(bootstrap: str) -> tuple[str, str]:
    topic = f"t{uuid.uuid4().hex[:10]}.loop"
    await bus.ensure_topics(bootstrap, [topic], partitions=PARTITIONS, replication_factor=1, min_insync_replicas=1)
    return topic, f"{topic}.group"


@contextlib.asynccontextmanager
async def consuming(
    bootstrap: str, topic: str, group: str, handle: Callable[[list[Record]], Awaitable[None]]
) -> AsyncIterator[None]:
    """`consume_forever` running in a task on a started consumer, stopped at the end of the block."""
    consumer = bus.consumer(bootstrap, topic, group_id=group)
    await consumer.start()
    task = asyncio.create_task(bus.consume_forever(consumer, handle, name="test"))
    try:
        await eventually(lambda: assigned(consumer), timeout=30, what="the consumer's partitions")
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()


async def send_in_transactions(bootstrap: str, topic: str, *, transactions: int, each: int) -> list[bytes]:
    producer = bus.producer(bootstrap, transactional_id=f"{topic}.source")
    await producer.start()
    sent: list[bytes] = []
    try:
        for t in range(transactions):
            async with producer.transaction():
                for i in range(each):
                    value = f"{t}-{i}".encode()
                    await producer.send(topic, value, key=value)
                    sent.append(value)
            await asyncio.sleep(0.05)
    finally:
        await producer.stop()
    return sent


async def committed_at_end(bootstrap: str, topic: str, group: str) -> bool:
    """Whether the group's committed offset of every partition is its end (past the last commit marker)."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await reader.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await reader.end_offsets(partitions)
        committed = {tp: await reader.committed(tp) or 0 for tp in partitions}
        return committed == ends
    finally:
        await reader.stop()


async def read_again(bootstrap: str, topic: str, group: str) -> list[bytes]:
    """What a consumer of the group that starts now is handed within a few seconds."""
    consumer = bus.consumer(bootstrap, topic, group_id=group)
    await consumer.start()
    try:
        found: list[bytes] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            found += [r.value or b"" for records in batches.values() for r in records]
        return found
    finally:
        await consumer.stop()


async def all_handled(handled: list[bytes], sent: list[bytes]) -> bool:
    return len(handled) >= len(sent)


async def assigned(consumer: AIOKafkaConsumer) -> bool:
    return bool(consumer.assignment())
