"""Reading a dead letter back from its topic, as it was first published, so that it can be published again."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from maillage.core.messaging.kafka_auth import KafkaAuth, client_kwargs
from maillage.domain.errors import Conflict
from maillage.monitor.models import DeadLetter

DLQ_HEADERS = ("dlq_reason", "dlq_detail", "dlq_topic", "dlq_partition", "dlq_offset")

Original = tuple[bytes | None, bytes, list[tuple[str, bytes]]]  # key, value, headers


async def read_back(dead: DeadLetter, *, bootstrap: str, auth: KafkaAuth | None) -> Original:
    """The dead letter's record without the headers that made it one (its value never leaves Kafka otherwise)."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed", **client_kwargs(auth)
    )
    await reader.start()
    try:
        tp = TopicPartition(dead.dlq_topic, dead.dlq_partition)
        reader.assign([tp])
        reader.seek(tp, dead.dlq_offset)
        async with asyncio.timeout(10):
            return await _find(reader, tp, offset=dead.dlq_offset)
    except TimeoutError:
        raise Conflict("problem.conflict.dead-letter-unreadable") from None
    finally:
        await reader.stop()


async def _find(reader: AIOKafkaConsumer, tp: TopicPartition, *, offset: int) -> Original:
    while True:
        batch = await reader.getmany(tp, timeout_ms=500)
        for record in batch.get(tp, []):
            if record.offset == offset:
                headers = [(k, v) for k, v in record.headers if k not in DLQ_HEADERS]
                return record.key, record.value or b"", headers
            if record.offset > offset:
                raise Conflict("problem.conflict.dead-letter-expired")
