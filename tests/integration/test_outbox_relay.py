"""The outbox relay: after an outage, a batch that failed for good must not stop every later row from leaving;
two processes of one service on one PostgreSQL database publish each record once, in order."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.cli.postgres_local import LocalPostgres
from maillage.core.messaging import bus
from maillage.core.outbox.enqueue import enqueue_record
from maillage.core.outbox.models import OutboxRecord
from maillage.core.outbox.relay import OutboxRelay
from maillage.core.storage.db import make_engine, session_factory, unit_of_work, writer

pytestmark = pytest.mark.integration


async def test_a_producer_left_out_of_sequence_by_an_outage_is_replaced_and_every_row_leaves(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = await new_topic(kafka_bootstrap)
    engine = await outbox_database(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    sessions = session_factory(engine)
    slot = bus.ProducerSlot(lambda: bus.producer(kafka_bootstrap))
    relay = OutboxRelay(sessions, slot, idle_poll=0.1)

    before = await write_rows(sessions, topic, 5)
    assert await relay.publish_pending() == 5
    # What a whole cluster's outage leaves behind (`maillage chaos`): a batch numbered and sent, then expired
    # without an answer. aiokafka never takes its sequence numbers back, so the broker now refuses every later
    # batch of this producer to the partition as out of sequence.
    producer = await slot.get()
    producer._txn_manager.increment_sequence_number(TopicPartition(topic, 0), 3)
    after = await write_rows(sessions, topic, 5)

    running = asyncio.create_task(relay.run())
    try:
        deadline = time.monotonic() + 60
        while await relay.backlog() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert await relay.backlog() == 0, "rows still waiting: the relay is stuck on its old producer"
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await slot.stop()
        await engine.dispose()

    assert slot.renewals == 1
    on_topic = Counter(await read_values(kafka_bootstrap, topic, count=10))
    assert on_topic == Counter(before + after)


async def test_two_relays_on_one_postgresql_database_publish_each_record_once_in_order(
    kafka_bootstrap: str, postgres: LocalPostgres
) -> None:
    topic = await new_topic(kafka_bootstrap)
    url = postgres.create_database(f"{topic}outbox")
    setup = await outbox_database(url)
    written = await write_rows(session_factory(setup), topic, 600)
    # Each relay with its own engine and producer, as two processes of the agency would have; small batches,
    # so that they take turns many times.
    engines = [make_engine(url) for _ in range(2)]
    slots = [bus.ProducerSlot(lambda: bus.producer(kafka_bootstrap)) for _ in engines]
    relays = [
        OutboxRelay(session_factory(e), slot, batch_size=25, idle_poll=0.1)
        for e, slot in zip(engines, slots, strict=True)
    ]
    running = [asyncio.create_task(relay.run()) for relay in relays]
    try:
        deadline = time.monotonic() + 60
        while await relays[0].backlog() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert await relays[0].backlog() == 0
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        for slot in slots:
            await slot.stop()
        for engine in [*engines, setup]:
            await engine.dispose()

    assert await read_values(kafka_bootstrap, topic, count=len(written)) == written, "each once, in order"


async def new_topic(bootstrap: str) -> str:
    topic = f"t{uuid.uuid4().hex[:10]}.relay"
    await bus.ensure_topics(bootstrap, [topic], partitions=1, replication_factor=1, min_insync_replicas=1)
    return topic


async def outbox_database(url: str) -> AsyncEngine:
    engine = make_engine(url)
    async with writer(engine).begin() as connection:
        await connection.run_sync(SQLModel.metadata.create_all, tables=[OutboxRecord.__table__])  # type: ignore[attr-defined]
    return engine


async def write_rows(sessions: async_sessionmaker[AsyncSession], topic: str, count: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    async with unit_of_work(sessions) as session:
        for event_id in ids:
            await enqueue_record(session, event_id=event_id, topic=topic, key=b"k", value=event_id.encode(), headers=[])
    return ids


async def read_values(bootstrap: str, topic: str, *, count: int) -> list[str]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    values: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while len(values) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            values += [r.value.decode() for records in batches.values() for r in records]
        # Anything more would be a duplicate: one more read, briefly.
        batches = await consumer.getmany(timeout_ms=500)
        values += [r.value.decode() for records in batches.values() for r in records]
    finally:
        await consumer.stop()
    return values
