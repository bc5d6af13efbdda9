"""Records handed to a producer together (`bus.send_batched`): one batch per partition, in order, and sent at
once — not held for the producer's linger, since nothing else will join them."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from maillage.core.messaging import bus

pytestmark = pytest.mark.integration

LINGER_S = 30.0


async def test_a_batch_handed_over_whole_leaves_without_waiting_for_the_linger(kafka_bootstrap: str) -> None:
    topic = f"t{uuid.uuid4().hex[:10]}.batched"
    await bus.ensure_topics(kafka_bootstrap, [topic], partitions=2, replication_factor=1, min_insync_replicas=1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=int(LINGER_S * 1000))
    await producer.start()
    try:
        records = [(topic, f"key-{i % 3}".encode(), f"value-{i}".encode(), []) for i in range(9)]
        futures = await bus.send_batched(producer, records)
        acked = await asyncio.wait_for(asyncio.gather(*futures), timeout=LINGER_S / 3)
    finally:
        await producer.stop()

    assert len(acked) == len(futures)
    assert await read_all(kafka_bootstrap, topic, count=9) == {
        f"key-{k}".encode(): [f"value-{i}".encode() for i in range(k, 9, 3)] for k in range(3)
    }


async def read_all(bootstrap: str, topic: str, *, count: int) -> dict[bytes, list[bytes]]:
    """Each key's values in the order its partition holds them."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    by_key: dict[bytes, list[bytes]] = {}
    try:
        async with asyncio.timeout(30):
            while sum(map(len, by_key.values())) < count:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        by_key.setdefault(r.key or b"", []).append(r.value or b"")
    finally:
        await consumer.stop()
    return by_key
