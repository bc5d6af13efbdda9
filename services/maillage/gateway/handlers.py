"""The gateway's Kafka loop: consume a batch, decide it, publish every result with the offsets in one transaction."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from maillage.core.messaging.bus import Record, SkippedOffsets, send_batched
from maillage.core.observability.metrics import DECISION_SECONDS
from maillage.gateway.crypto import CryptoThreads
from maillage.gateway.outgoing import Outgoing
from maillage.gateway.services import Gateway

log = logging.getLogger(__name__)

Batches = dict[Any, list[Record]]  # aiokafka's TopicPartition (untyped) → its records, in offset order


class TransactionalLoop:
    """Exactly-once effect on Kafka: outputs and consumed offsets commit together or not at all."""

    def __init__(
        self,
        gateway: Gateway,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        *,
        crypto: CryptoThreads,
        group_id: str,
        max_records: int = 1000,
        renew: Callable[[], Awaitable[AIOKafkaProducer]] | None = None,
    ) -> None:
        self.gateway = gateway
        self.crypto = crypto
        self.consumer = consumer
        self.producer = producer
        self.group_id = group_id
        self.max_records = max_records
        self.renew = renew
        self.processed = 0
        self.skipped = SkippedOffsets(consumer)

    async def run(self) -> None:
        while True:
            await self.run_once()

    async def run_once(self, timeout_ms: int = 500) -> int:
        batches: Batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=self.max_records)
        records = [r for part in batches.values() for r in part]
        if not records:
            with contextlib.suppress(KafkaError):
                await self.skipped.commit_when_idle()
            return 0
        offsets = {tp: recs[-1].offset + 1 for tp, recs in batches.items()}
        try:
            with DECISION_SECONDS.time():
                await self._publish(await self._decide(records), offsets)
        except Exception as exc:
            log.warning("batch not published, reading it again", extra={"error": type(exc).__name__})
            self._rewind(batches)
            await asyncio.sleep(0.5)
            await self._renew_if_unusable()
            return 0
        self.skipped.note(offsets)
        self.processed += len(records)
        return len(records)

    async def _renew_if_unusable(self) -> None:
        # aiokafka leaves a fenced producer, or one whose transaction ended in a fatal error, in a state every later
        # transaction asserts against: without a new producer the loop would read the same batch forever. Seen
        # after a whole cluster's outage (`maillage chaos`): the coordinator had timed the open transaction out.
        # With one gateway per transactional id a fence is never another live owner's doing, so taking the id
        # back is safe; several gateways must renew only the partitions they still own.
        if self.renew is None or not self.producer._txn_manager.is_fatal_error():
            return
        try:
            self.producer = await self.renew()
        except KafkaError as exc:
            log.warning("transactional producer not renewed yet", extra={"error": type(exc).__name__})
            return
        log.warning("transactional producer renewed after a fatal error")

    async def _decide(self, records: list[Record]) -> list[Outgoing]:
        arrivals = await self.crypto.open(records)
        return await self.crypto.seal(await self.gateway.process(arrivals))

    async def _publish(self, outgoing: list[Outgoing], offsets: dict[Any, int]) -> None:
        async with self.producer.transaction():
            futures = await send_batched(self.producer, ((o.topic, o.key, o.value, o.headers) for o in outgoing))
            await self.producer.send_offsets_to_transaction(offsets, self.group_id)
        await asyncio.gather(*futures)

    def _rewind(self, batches: Batches) -> None:
        for tp, recs in batches.items():
            self.consumer.seek(tp, recs[0].offset)
