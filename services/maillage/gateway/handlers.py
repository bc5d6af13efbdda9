"""The gateway's Kafka loop: consume a partition's batch, decide it, publish every result with its offsets in one
transaction of that partition's producer. Several gateways share the partitions through one consumer group."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from maillage.core.messaging.bus import Record, SkippedOffsets, send_batched
from maillage.core.observability.metrics import DECISION_SECONDS
from maillage.gateway.crypto import CryptoThreads
from maillage.gateway.outgoing import Outgoing
from maillage.gateway.services import Gateway

log = logging.getLogger(__name__)

Batches = dict[Any, list[Record]]  # aiokafka's TopicPartition (untyped) → its records, in offset order
ProducerFactory = Callable[[int], AIOKafkaProducer]  # input partition → its producer, not started
# A partition's batch once decided: nothing to send, why it could not be decided, or its transaction under way.
Sending = None | Exception | tuple[float, asyncio.Task[None]]


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def partition_transactional_id(prefix: str, partition: int) -> str:
    """The transactional id of the producer that publishes what input partition `partition` caused."""
    return f"{prefix}.p{partition}"


class PartitionProducers(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no type hints
    """One transactional producer per input partition this gateway owns, with that partition's transactional id.

    aiokafka's `send_offsets_to_transaction` does not carry the group's generation (KIP-447), so the broker
    would take offsets from a gateway that lost the partition. Its transactional id fences it instead: the
    new owner's `init_transactions` bumps the id's epoch, and the old owner's next send or commit fails.
    """

    def __init__(self, make: ProducerFactory, *, on_assigned: Callable[[], Awaitable[None]]) -> None:
        self.make = make
        self.on_assigned = on_assigned
        self.consumer: AIOKafkaConsumer | None = None  # the consumer it listens to, set before it starts
        self.producers: dict[int, AIOKafkaProducer] = {}
        self.owned: set[int] = set()
        # Each owned partition's next offset to decide: its committed offset, then past each published batch.
        # A batch put aside (read across a rebalance) moved the consumer past it: it seeks back here.
        self.next: dict[int, int] = {}
        self.generation = 0  # changes with every assignment: a batch read before it is read again
        self.turn = asyncio.Lock()  # held while a batch is decided and published, and during a rebalance

    async def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        log.info("rebalance: partitions revoked", extra={"partitions": sorted(tp.partition for tp in revoked)})
        async with self.turn:  # the batch in flight is published first
            self.owned = set()
            self.generation += 1

    async def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        began = time.monotonic()
        async with self.turn:
            partitions = {tp.partition: tp for tp in assigned}
            log.info(
                "rebalance: partitions assigned, fencing their previous owners",
                extra={"partitions": sorted(partitions)},
            )
            await self.stop()
            # Every producer anew, kept partitions too: `init_transactions` returns only once the id's previous
            # transaction is complete, its offsets written; read before that, they could be one batch old.
            started = await asyncio.gather(*(self._start(p) for p in partitions), return_exceptions=True)
            failed = [p for p, done in zip(partitions, started, strict=True) if isinstance(done, BaseException)]
            if failed:
                log.warning(
                    "partition producers not started, retried on their first batch", extra={"partitions": failed}
                )
            log.info("rebalance: producers started", extra={"partitions": sorted(partitions)})
            await self._seek_committed(tp for p, tp in partitions.items() if p not in failed)
            await self.on_assigned()  # the state other gateways changed meanwhile
            self.owned = set(partitions)
            self.generation += 1
        log.info(
            "rebalance: deciding",
            extra={"partitions": sorted(partitions), "seconds": round(time.monotonic() - began, 3)},
        )

    async def of(self, tp: Any) -> AIOKafkaProducer | None:
        """The partition's producer; None when it had to be started now (its batch is to be read again)."""
        if tp.partition in self.producers:
            return self.producers[tp.partition]
        await self._start(tp.partition)
        await self._seek_committed([tp])
        return None

    def unusable(self, tp: Any) -> bool:
        """A producer fenced, or whose transaction ended in a fatal error: aiokafka asserts against it in every
        later transaction, so the loop would read the same batch forever (seen after a whole cluster's outage,
        whose transaction coordinator had timed the open transaction out: `maillage chaos`)."""
        producer = self.producers.get(tp.partition)
        return producer is not None and bool(producer._txn_manager.is_fatal_error())

    async def renew(self, tp: Any) -> None:
        """After a failed transaction: a fenced or failed producer is not used again."""
        producer = self.producers.pop(tp.partition, None)
        if producer is not None:
            with contextlib.suppress(KafkaError):
                await producer.stop()
        with contextlib.suppress(KafkaError):
            await self.of(tp)

    async def stop(self) -> None:
        producers, self.producers = list(self.producers.values()), {}
        for producer in producers:
            with contextlib.suppress(KafkaError):
                await producer.stop()

    async def _start(self, partition: int) -> None:
        producer = self.make(partition)
        try:
            await producer.start()  # init_transactions: fences the partition's previous owner
        except BaseException:
            with contextlib.suppress(KafkaError):
                await producer.stop()
            raise
        self.producers[partition] = producer

    async def _seek_committed(self, tps: Iterable[Any]) -> None:
        for tp in tps:
            committed = await self.kafka_consumer.committed(tp)
            # None: nothing committed yet, the group reads from the start (auto_offset_reset=earliest).
            self.rewind(tp, committed or 0)

    def rewind(self, tp: Any, offset: int | None = None) -> None:
        """Read the partition again from `offset`, by default from the next offset to decide."""
        self.next[tp.partition] = self.next.get(tp.partition, 0) if offset is None else offset
        if tp in self.kafka_consumer.assignment():
            self.kafka_consumer.seek(tp, self.next[tp.partition])

    def published(self, tp: Any, records: list[Record]) -> None:
        self.next[tp.partition] = records[-1].offset + 1

    @property
    def kafka_consumer(self) -> AIOKafkaConsumer:
        assert self.consumer is not None, "set before the consumer starts"
        return self.consumer


class TransactionalLoop:
    """Exactly-once effect on Kafka: a partition's outputs and consumed offsets commit together or not at all."""

    def __init__(
        self,
        gateway: Gateway,
        consumer: AIOKafkaConsumer,
        producers: PartitionProducers,
        *,
        crypto: CryptoThreads,
        group_id: str,
        max_records: int = 1000,
    ) -> None:
        self.gateway = gateway
        self.crypto = crypto
        self.consumer = consumer
        self.producers = producers
        self.group_id = group_id
        self.max_records = max_records
        self.processed = 0
        self.skipped = SkippedOffsets(consumer)

    async def run(self) -> None:
        while True:
            await self.run_once()

    async def run_once(self, timeout_ms: int = 500) -> int:
        batches: Batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=self.max_records)
        generation = self.producers.generation  # read before any await: a rebalance may come at each
        if not any(batches.values()):
            with contextlib.suppress(KafkaError):
                await self.skipped.commit_when_idle()
            return 0
        async with self.producers.turn:  # a rebalance waits until every transaction of the poll has ended
            # The partitions' batches are decided one after the other, in order (their database commits too), and
            # each one's transaction leaves as soon as it is decided: while the broker answers it, the next one
            # is decided, and the poll takes about one transaction's round trips, not one per partition. Each
            # partition keeps its own producer, and with it the fencing of its previous owner.
            publishing: list[tuple[Any, list[Record], Sending]] = []
            try:
                for tp, records in batches.items():
                    publishing.append((tp, records, await self._decided(tp, records, generation=generation)))
                done = await asyncio.gather(*(self._published(tp, records, sent) for tp, records, sent in publishing))
            except BaseException:  # stopped meanwhile: no transaction is left running unawaited
                for _, _, sending in publishing:
                    if isinstance(sending, tuple):
                        sending[1].cancel()
                raise
        if any(count is None for count in done):
            await asyncio.sleep(0.5)
        return sum(count or 0 for count in done)

    async def _decided(self, tp: Any, records: list[Record], *, generation: int) -> Sending:
        """The partition's batch decided and its transaction under way; None when it is not this gateway's to
        decide now (revoked, or read across a rebalance); the error when it could not be decided."""
        if tp.partition not in self.producers.owned:
            return None  # revoked: its new owner reads it again from the committed offset
        if generation != self.producers.generation or records[0].offset < self.producers.next.get(tp.partition, 0):
            self.producers.rewind(tp)  # read across a rebalance: from the partition's next offset again
            return None
        began = time.monotonic()
        try:
            producer = await self.producers.of(tp)
            if producer is None:
                return None
            outgoing = await self._decide(records, chain=tp.partition)
        except Exception as exc:
            return exc
        return began, asyncio.create_task(self._publish(producer, outgoing, tp, records))

    async def _published(self, tp: Any, records: list[Record], sending: Sending) -> int | None:
        """How many records the partition's transaction committed (0 when it had none to send); None when it
        failed, and the batch will be read again."""
        if sending is None:
            return 0
        try:
            if isinstance(sending, Exception):
                raise sending
            began, transaction = sending
            await transaction
        except Exception as exc:
            log.warning(
                "batch not published, reading it again",
                extra={"error": type(exc).__name__, "partition": tp.partition},
            )
            self.producers.rewind(tp)
            if isinstance(exc, KafkaError) or self.producers.unusable(tp):
                await self.producers.renew(tp)
            return None
        DECISION_SECONDS.observe(time.monotonic() - began)
        self.producers.published(tp, records)
        self.skipped.note({tp: records[-1].offset + 1})
        self.processed += len(records)
        return len(records)

    async def _decide(self, records: list[Record], *, chain: int) -> list[Outgoing]:
        arrivals = await self.crypto.open(records)
        return await self.crypto.seal(await self.gateway.process(arrivals, chain=chain))

    async def _publish(
        self, producer: AIOKafkaProducer, outgoing: list[Outgoing], tp: Any, records: list[Record]
    ) -> None:
        futures: list[asyncio.Future[Any]] = []
        try:
            async with producer.transaction():
                futures = await send_batched(producer, ((o.topic, o.key, o.value, o.headers) for o in outgoing))
                await producer.send_offsets_to_transaction({tp: records[-1].offset + 1}, self.group_id)
                # Every send acknowledged before the commit: aiokafka commits a transaction once its sends have
                # ended, failed or not, so a send that failed for good (a partition without a leader through a
                # whole cluster's outage) would leave its records out of a committed transaction whose offsets
                # pass them — lost (`maillage chaos --smoke`, one of 800). A failure here aborts it instead.
                await asyncio.gather(*futures)
        except BaseException:
            # The batch is read again; its sends' own failures (the same fence) are that one failure, whenever
            # they come.
            for future in futures:
                future.add_done_callback(_retrieved)
            raise
