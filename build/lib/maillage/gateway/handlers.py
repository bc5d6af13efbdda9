"""The gateway's Kafka loop: consume a batch, decide it, publish every result with the offsets in one transaction."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from maillage.core.messaging.bus import SkippedOffsets, send_batched
from maillage.core.observability.metrics import DECISION_SECONDS
from maillage.gateway.services import Gateway, Outgoing

log = logging.getLogger(__name__)


class TransactionalLoop:
    """Exactly-once effect on Kafka: outputs and consumed offsets commit together or not at all."""

    def __init__(
        self,
        gateway: Gateway,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        *,
        group_id: str,
        max_records: int = 1000,
    ) -> None:
        self.gateway = gateway
        self.consumer = consumer
        self.producer = producer
        self.group_id = group_id
        self.max_records = max_records
        self.processed = 0
        self.skipped = SkippedOffsets(consumer)

    async def run(self) -> None:
        while True:
            await self.run_once()

    async def run_once(self, timeout_ms: int = 500) -> int:
        batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=self.max_records)
        records = [r for part in batches.values() for r in part]
        if not records:
            with contextlib.suppress(KafkaError):
                await self.skipped.commit_when_idle()
            return 0
        try:
            with DECISION_SECONDS.time():
                outgoing = await self.gateway.process(records)
                offsets = {tp: recs[-1].offset + 1 for tp, recs in batches.items()}
                await self._publish(outgoing, offsets)
        except Exception as exc:
            log.warning("batch not published, reading it again", extra={"error": type(exc).__name__})
            self._rewind(batches)
            await asyncio.sleep(0.5)
            return 0
        self.skipped.note(offsets)
        self.processed += len(records)
        return len(records)

    async def _publish(self, outgoing: list[Outgoing], offsets: dict[TopicPartition, int]) -> None:
        async with self.producer.transaction():
            records = ((o.topic, o.key, o.value, o.headers) for o in outgoing)
            futures = await send_batched(self.producer, records)
            await self.producer.send_offsets_to_transaction(offsets, self.group_id)
        await asyncio.gather(*futures)

    def _rewind(self, batches: dict[TopicPartition, list]) -> None:  # type: ignore[type-arg]
        for tp, recs in batches.items():
            self.consumer.seek(tp, recs[0].offset)
