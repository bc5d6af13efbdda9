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

from maillage.core.lifecycle import STOP_SECONDS
from maillage.core.messaging.bus import STEADY, Record, SkippedOffsets, send_batched, stop_producer
from maillage.core.observability.metrics import DECISION_SECONDS
from maillage.gateway.crypto import CryptoThreads
from maillage.gateway.outgoing import Outgoing
from maillage.gateway.services import Gateway

log = logging.getLogger(__name__)

ProducerFactory = Callable[[int], AIOKafkaProducer]  # input partition → its producer, not started
# A partition's batch once decided: nothing to send, or its transaction under way (which fails if it could not be
# decided).
Sending = None | tuple[float, asyncio.Task[None]]


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def _stopped(producer: AIOKafkaProducer) -> None:
    """Stop a producer, bounded: one whose batches cannot drain (a cluster away) is abandoned, not waited for
    without end — the gateway's turn is held meanwhile, and every partition would wait with it."""
    await stop_producer(producer, within=STOP_SECONDS)


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
        self.owned: dict[int, Any] = {}  # partition → aiokafka's TopicPartition
        # Each owned partition's next offset to decide: its committed offset, then past each published batch.
        # A batch put aside (read across a rebalance) moved the consumer past it: it seeks back here.
        self.next: dict[int, int] = {}
        self.generation = 0  # changes with every assignment: a batch read before it is read again
        self.turn = asyncio.Lock()  # held while a batch is decided and published, and during a rebalance
        # What is left to do before deciding, when a rebalance (or a failed transaction) could not finish it — a
        # cluster just back answers errors for a while: owned partitions without a producer or whose committed
        # offset is still to read, and the state other gateways changed, still to load. aiokafka only logs a
        # listener's failure and the assignment stands: left undone, the gateway would stop deciding for good.
        self.unsought: set[int] = set()
        self.stale = False

    @property
    def deciding(self) -> bool:
        """It decides partitions of its own: assigned, their previous owners fenced, everything read."""
        return bool(self.owned) and self.set_up

    @property
    def set_up(self) -> bool:
        return not self.unsought and not self.stale

    async def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        log.info("rebalance: partitions revoked", extra={"partitions": sorted(tp.partition for tp in revoked)})
        async with self.turn:  # the batch in flight is published first
            self.owned = {}
            self.generation += 1

    async def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        began = time.monotonic()
        async with self.turn:
            self.owned = {tp.partition: tp for tp in assigned}
            log.info(
                "rebalance: partitions assigned, fencing their previous owners",
                extra={"partitions": sorted(self.owned)},
            )
            self.generation += 1
            self.unsought, self.stale = set(self.owned), True
            for partition in self.owned:
                self.next.pop(partition, None)  # another gateway may have moved it on since
            # Every producer anew, kept partitions too: `init_transactions` returns only once the id's previous
            # transaction is complete, its offsets written; read before that, they could be one batch old.
            await self.stop()
            try:
                await self.set_up_now()
            except Exception as exc:
                log.warning(
                    "rebalance not finished: finished before the first batch is decided",
                    extra={"error": type(exc).__name__, "partitions": sorted(self.unsought)},
                )
        log.info(
            "rebalance: deciding" if self.set_up else "rebalance: set-up pending",
            extra={"partitions": sorted(self.owned), "seconds": round(time.monotonic() - began, 3)},
        )

    async def set_up_now(self) -> None:
        """Start the owned partitions' missing producers (fencing their previous owners), read their committed
        offsets, then load the state other gateways changed. Raises what still fails: the next poll tries again;
        what succeeded is kept."""
        self.unsought &= self.owned.keys()  # revoked since: another gateway's now, not to be fenced from here
        unstarted = [p for p in sorted(self.unsought) if p not in self.producers]
        started = await asyncio.gather(*(self._start(p) for p in unstarted), return_exceptions=True)
        failed = [p for p, done in zip(unstarted, started, strict=True) if isinstance(done, BaseException)]
        for partition in sorted(self.unsought - set(failed)):
            committed = await self.kafka_consumer.committed(self.owned[partition])
            # None: nothing committed yet, the group reads from the start (auto_offset_reset=earliest).
            self.rewind(self.owned[partition], committed or 0)
            self.unsought.discard(partition)
        if failed:
            raise next(e for e in started if isinstance(e, BaseException))
        if self.stale:
            await self.on_assigned()  # the state other gateways changed meanwhile
            self.stale = False
        if held := self.kafka_consumer.paused():
            self.kafka_consumer.resume(*held)

    def hold(self, tp: Any) -> None:
        """A batch set aside until the set-up is done: read again from the partition's next offset (from its
        committed one when none is known yet), and nothing more fetched of it meanwhile — through an outage the
        loop would otherwise read, and set aside, a whole backlog again and again."""
        self.rewind(tp)
        if tp in self.kafka_consumer.assignment():
            self.kafka_consumer.pause(tp)

    def unusable(self, tp: Any) -> bool:
        """A producer fenced, or whose transaction ended in a fatal error: aiokafka asserts against it in every
        later transaction, so the loop would read the same batch forever (seen after a whole cluster's outage,
        whose transaction coordinator had timed the open transaction out: `maillage chaos`)."""
        producer = self.producers.get(tp.partition)
        return producer is not None and bool(producer._txn_manager.is_fatal_error())

    async def renew(self, tp: Any) -> None:
        """After a failed transaction: a fenced or failed producer is not used again; the partition's next one is
        started, and its committed offset read, before it decides again."""
        if tp.partition in self.owned:
            self.unsought.add(tp.partition)  # first: whatever the stop below does, nothing decides before
        producer = self.producers.pop(tp.partition, None)
        if producer is not None:
            await _stopped(producer)

    async def stop(self) -> None:
        producers, self.producers = list(self.producers.values()), {}
        for producer in producers:
            await _stopped(producer)

    async def _start(self, partition: int) -> None:
        producer = self.make(partition)
        try:
            await producer.start()  # init_transactions: fences the partition's previous owner
        except BaseException:
            await _stopped(producer)
            raise
        self.producers[partition] = producer

    def rewind(self, tp: Any, offset: int | None = None) -> None:
        """Read the partition again from `offset`, by default from the next offset to decide (none known yet:
        from its committed offset, read before anything of it is decided)."""
        if offset is not None:
            self.next[tp.partition] = offset
        elif tp.partition not in self.next:
            return
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
        if not self.producers.set_up:
            await self._set_up()
        batches = await STEADY.poll(self.consumer, timeout_ms=timeout_ms, max_records=self.max_records)
        generation = self.producers.generation  # read before any await: a rebalance may come at each
        if not any(batches.values()):
            # Not before every partition is set up: a batch put aside meanwhile moved the position past records
            # not decided yet, and only the set-up's seek to the committed offset brings it back.
            if self.producers.set_up:
                with contextlib.suppress(KafkaError):
                    await self.skipped.commit_when_idle()
            return 0
        async with self.producers.turn:  # a rebalance waits until every transaction of the poll has ended
            # The partitions' batches are decided one after the other, in order (their database commits too), and
            # each one's transaction begins as its decision does and leaves as soon as it is decided: while the
            # broker answers it, the next one is decided, and the poll takes about one transaction's round trips,
            # not one per partition. Each partition keeps its own producer, and with it the fencing of its
            # previous owner.
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
        """The partition's batch decided and its transaction under way (failing, when the batch could not be
        decided); None when it is not this gateway's to decide now (revoked, or read across a rebalance)."""
        if tp.partition not in self.producers.owned:
            return None  # revoked: its new owner reads it again from the committed offset
        if generation != self.producers.generation or records[0].offset < self.producers.next.get(tp.partition, 0):
            self.producers.rewind(tp)  # read across a rebalance: from the partition's next offset again
            return None
        if self.producers.stale or tp.partition in self.producers.unsought:
            self.producers.hold(tp)  # decided once set up (`_set_up`), from its committed offset
            return None
        began = time.monotonic()
        producer = self.producers.producers.get(tp.partition)
        if producer is None:  # not set up after all: the next poll's `_set_up` starts it
            self.producers.unsought.add(tp.partition)
            self.producers.hold(tp)
            return None
        decided: asyncio.Future[list[Outgoing]] = asyncio.get_running_loop().create_future()
        decided.add_done_callback(_retrieved)  # the transaction's failure, when it failed before awaiting it
        transaction = asyncio.create_task(self._publish(producer, decided, tp, records))
        try:
            decided.set_result(await self._decide(records, chain=tp.partition))
        except Exception as exc:
            decided.set_exception(exc)  # the transaction aborts, and fails with it
        except BaseException:
            transaction.cancel()
            raise
        return began, transaction

    async def _set_up(self) -> None:
        """Finish what a rebalance or a failed transaction left to do before deciding; after a failure, wait a
        little before the next poll tries again (a cluster coming back)."""
        async with self.producers.turn:
            try:
                await self.producers.set_up_now()
                return
            except Exception as exc:
                log.warning(
                    "partitions not set up yet, trying again",
                    extra={"error": type(exc).__name__, "partitions": sorted(self.producers.unsought)},
                )
        await asyncio.sleep(0.5)

    async def _published(self, tp: Any, records: list[Record], sending: Sending) -> int | None:
        """How many records the partition's transaction committed (0 when it had none to send); None when it
        failed, and the batch will be read again."""
        if sending is None:
            return 0
        began, transaction = sending
        try:
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
        self, producer: AIOKafkaProducer, decided: asyncio.Future[list[Outgoing]], tp: Any, records: list[Record]
    ) -> None:
        futures: list[asyncio.Future[Any]] = []
        try:
            async with producer.transaction():
                # The consumed offsets join the transaction while the batch is being decided (known before its
                # outputs are): their two round trips to the broker (AddOffsetsToTxn, TxnOffsetCommit) are then
                # off the path of the outputs, which wait only for their partitions to join it, and the commit.
                offsets = asyncio.ensure_future(
                    producer.send_offsets_to_transaction({tp: records[-1].offset + 1}, self.group_id)
                )
                offsets.add_done_callback(_retrieved)  # awaited below; before that, a failure aborts after it
                outgoing = await decided
                futures = await send_batched(producer, ((o.topic, o.key, o.value, o.headers) for o in outgoing))
                await offsets
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
