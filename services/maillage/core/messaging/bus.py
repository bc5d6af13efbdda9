"""Kafka plumbing shared by every service: producers, consumers, topic creation, dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.conn import CloseReason
from aiokafka.errors import IllegalStateError, KafkaConnectionError, KafkaError, TopicAlreadyExistsError
from aiokafka.producer.message_accumulator import BatchBuilder

from maillage.core.messaging.envelope import Headers
from maillage.core.messaging.kafka_auth import KafkaAuth, client_kwargs

log = logging.getLogger(__name__)


def producer(
    bootstrap: str, *, transactional_id: str | None = None, auth: KafkaAuth | None = None, **extra: Any
) -> AIOKafkaProducer:
    # acks=all + idempotence: a retried send never duplicates, an acked one is on every in-sync replica.
    if transactional_id is not None:
        # Right after a commit the coordinator answers the next transaction's AddOffsetsToTxn with
        # CONCURRENT_TRANSACTIONS until its markers are written (KAFKA-5477); aiokafka then waits the
        # whole retry backoff (100 ms by default) before asking again, which was most of a referral's
        # latency through the gateway. The Java client waits 20 ms in that case; on a local broker the
        # markers are written within a few ms, and 5 ms halved the 90th percentile of a transaction
        # (33 → 18 ms, measured with one producer and one consumer on this machine).
        extra.setdefault("retry_backoff_ms", 5)
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        transactional_id=transactional_id,
        linger_ms=2,
        max_batch_size=256 * 1024,
        request_timeout_ms=30000,
        **client_kwargs(auth),
        **extra,
    )


class ProducerSlot:
    """A service's idempotent producer, started on first use and replaced after a send that failed.

    aiokafka numbers a batch (per partition) when it puts it on the wire and never takes the number back: once
    a batch has failed for good — expired while a whole cluster was down — the broker refuses every later batch
    of that producer to the partition as OutOfOrderSequenceNumber, for ever (seen: `maillage chaos`, an outbox
    relay stuck after a 20 s outage). The Java client resets its producer id then; a new producer gets a new id,
    and its sequences start afresh. Started lazily, so a service that never publishes (the gateway, whose
    partition producers are transactional) never starts one.
    """

    def __init__(self, make: Callable[[], AIOKafkaProducer], *, stop_within: float = 5.0) -> None:
        self._make = make
        self._current: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._stop_within = stop_within
        self.renewals = 0

    async def get(self) -> AIOKafkaProducer:
        """The started producer; a broker out of reach raises here (KafkaConnectionError) and next time tries anew."""
        async with self._lock:
            if self._current is None:
                fresh = self._make()
                try:
                    await fresh.start()
                except BaseException:
                    await self._stop(fresh)
                    raise
                self._current = fresh
            return self._current

    async def discard(self, *, error: BaseException) -> None:
        """After a failed send: the producer is stopped (bounded) and the next `get` starts a new one."""
        async with self._lock:
            stale, self._current = self._current, None
        if stale is None:
            return
        self.renewals += 1
        log.warning("producer replaced after a failed send", extra={"error": type(error).__name__})
        await self._stop(stale)

    async def stop(self) -> None:
        async with self._lock:
            stale, self._current = self._current, None
        if stale is not None:
            await self._stop(stale)

    async def _stop(self, stale: AIOKafkaProducer) -> None:
        # Batches still queued fail with the stop: their rows stay unpublished and go out with the next producer.
        await stop_producer(stale, within=self._stop_within)


async def stop_producer(producer: AIOKafkaProducer, *, within: float) -> None:
    """Stop `producer`, waiting `within` seconds at most for its queued batches to be delivered. One whose batches
    cannot be (a cluster away: aiokafka retries them until they expire, `request_timeout_ms`) is abandoned rather
    than left half-stopped: its batches fail now, their senders told; its background task ends; its connections
    close. Its stop cut short by the timeout alone, it went on retrying in the background — holding its sockets,
    and a transactional one its transactional id — until the garbage collector found it."""
    try:
        async with asyncio.timeout(within):
            await producer.stop()
    except (TimeoutError, KafkaError) as exc:
        log.warning("producer abandoned, its batches undelivered", extra={"error": type(exc).__name__})
        _abandon(producer)


def _abandon(producer: AIOKafkaProducer) -> None:
    """What aiokafka's `stop` does, without its wait for the batches: aiokafka has no forced close."""
    producer._message_accumulator.fail_all(KafkaConnectionError("the producer stopped before delivering them"))
    sender_task = producer._sender.sender_task
    if sender_task is not None:
        sender_task.cancel()
    client = producer.client
    if client._sync_task is not None:
        client._sync_task.cancel()
    for connection in list(client._conns.values()):
        connection.close(reason=CloseReason.SHUTDOWN)


def consumer(
    bootstrap: str,
    *topics: str,
    group_id: str,
    auth: KafkaAuth | None = None,
    listener: ConsumerRebalanceListener | None = None,
    **extra: Any,
) -> AIOKafkaConsumer:
    # Offsets are committed only after the effect is durable (database commit or Kafka transaction).
    client = AIOKafkaConsumer(
        *(() if listener else topics),
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        # How long a fetch waits at the broker for records when none are there; records end the wait as they
        # come. At 50 ms every idle consumer asked again twenty times a second: half the broker's CPU in a Pôle
        # with no referral (README "A lean pipeline", tenth round). 500 ms is Kafka's own default.
        fetch_max_wait_ms=500,
        max_poll_records=1000,
        **client_kwargs(auth),
        **extra,
    )
    if listener is not None:
        client.subscribe(topics=list(topics), listener=listener)
    return client


async def ensure_topics(
    bootstrap: str,
    names: Iterable[str],
    *,
    partitions: int,
    replication_factor: int,
    min_insync_replicas: int,
    auth: KafkaAuth | None = None,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Create the topics that are missing, with `configs` (per topic name: retention…); topics that exist take
    those configs too, so that a changed network file (or a topic made before it said anything) is obeyed."""
    extra = configs or {}
    wanted = {name: {"min.insync.replicas": str(min_insync_replicas), **extra.get(name, {})} for name in names}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs(auth))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=partitions, replication_factor=replication_factor, topic_configs=own)
            for name, own in wanted.items()
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
        await _align_configs(admin, {name: c for name, c in wanted.items() if name in existing})
    finally:
        await admin.close()


class TopicConfigError(RuntimeError):
    """Kafka refused to describe or change a topic's configs."""


_DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs' config_source: set on the topic itself


async def described_configs(admin: AIOKafkaAdminClient, names: Iterable[str]) -> dict[str, dict[str, tuple[str, int]]]:
    """Each topic's configs as the broker holds them: name → (value, source)."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    if not resources:
        return {}
    found: dict[str, dict[str, tuple[str, int]]] = {}
    for response in await admin.describe_configs(resources):
        for error, message, _, topic, entries in (r[:5] for r in response.resources):
            if error:
                raise TopicConfigError(f"{topic}: {message or error}")
            found[topic] = {entry[0]: (entry[1], entry[3]) for entry in entries}
    return found


async def _align_configs(admin: AIOKafkaAdminClient, wanted: Mapping[str, Mapping[str, str]]) -> None:
    current = await described_configs(admin, wanted)
    changed = {}
    for name, configs in wanted.items():
        if any(current[name].get(key, ("", 0))[0] != value for key, value in configs.items()):
            # AlterConfigs replaces every config set on the topic: keep those set by others.
            kept = {key: value for key, (value, source) in current[name].items() if source == _DYNAMIC_TOPIC_CONFIG}
            changed[name] = kept | dict(configs)
    if not changed:
        return
    responses = await admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name, configs) for name, configs in changed.items()]
    )
    refused = [f"{topic}: {message or error}" for r in responses for error, message, _, topic in r.resources if error]
    if refused:
        raise TopicConfigError("; ".join(refused[:3]))


OutRecord = tuple[str, bytes, bytes | None, Headers]  # topic, key, value, headers


class Record(Protocol):
    """A consumed record, as every handler reads it (aiokafka's ConsumerRecord, which ships no type hints)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


@dataclass(frozen=True)
class Consumed:
    """A `Record` that did not come from a broker: what is decided straight from envelopes (the bench's `decision`
    part, tests), as a consumer would hand it over."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp: int = 0


async def send_batched(kafka_producer: AIOKafkaProducer, records: Iterable[OutRecord]) -> list[asyncio.Future[Any]]:
    """Queue many keyed records as one record batch per partition; the futures resolve once they are acked.

    The same partitions and the same order per partition as one `send()` per record, without its
    per-record cost (a metadata wait, a coroutine, an accumulator lookup), which dominated the
    gateway's publishing (aiokafka #528).
    """
    builders: dict[tuple[str, int], BatchBuilder] = {}
    futures: list[asyncio.Future[Any]] = []
    partitions: dict[str, list[int]] = {}  # each topic's, asked of the producer's metadata once per call
    for topic, key, value, headers in records:
        if topic not in partitions:
            partitions[topic] = sorted(await kafka_producer.partitions_for(topic))
        partition = _partition_of(partitions[topic], key)
        builder = builders.get((topic, partition))
        if builder is None or builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
            if builder is not None:  # full: send it and start the next one for this partition
                futures.append(await _send_now(kafka_producer, builder, topic, partition))
            builder = builders[(topic, partition)] = kafka_producer.create_batch()
            if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
                raise ValueError(f"a record for {topic} is larger than a whole batch")
    for (topic, partition), builder in builders.items():
        futures.append(await _send_now(kafka_producer, builder, topic, partition))
    return futures


async def _send_now(kafka_producer: AIOKafkaProducer, builder: BatchBuilder, topic: str, partition: int) -> Any:
    """The batch queued closed: complete, so sent at once. An open one would wait out the producer's linger
    (aiokafka's accumulator lets only a closed batch skip it), for records that no other send will join."""
    builder.close()
    return await kafka_producer.send_batch(builder, topic, partition=partition)


def _partition_of(partitions: list[int], key: bytes) -> int:
    # aiokafka's (and Kafka's) default partitioner for a keyed record: murmur2 of the key.
    return partitions[_murmur2(key) % len(partitions)]


_M = 0x5BD1E995
_WORDS = struct.Struct("<I")


@functools.lru_cache(maxsize=8192)
def _murmur2(key: bytes) -> int:
    """Kafka's murmur2 of `key` (the Java client's `Utils.murmur2`, as aiokafka's `murmur2`), positive. aiokafka's
    own is pure Python at ~9-15 µs a key, three keys an event at the gateway: this one reads the key's words at
    once (about twice as fast), and a subject's key, which recurs, is kept (`test_bus_partitioning.py`)."""
    length = len(key)
    h = 0x9747B28C ^ length
    whole = length & ~3
    for (k,) in _WORDS.iter_unpack(key[:whole]):
        k = (k * _M) & 0xFFFFFFFF
        k ^= k >> 24
        h = ((h * _M) ^ (k * _M)) & 0xFFFFFFFF
    rest = length & 3
    if rest == 3:
        h ^= key[whole + 2] << 16
    if rest >= 2:
        h ^= key[whole + 1] << 8
    if rest:
        h = ((h ^ key[whole]) * _M) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * _M) & 0xFFFFFFFF
    return (h ^ (h >> 15)) & 0x7FFFFFFF


def dead_letter_headers(record: Record, *, reason: str, detail: str) -> Headers:
    """Headers of `record`'s dead letter: why, and where it came from; the original headers follow, untouched."""
    return [
        ("dlq_reason", reason.encode()),
        ("dlq_detail", detail.encode()[:500]),
        ("dlq_topic", record.topic.encode()),
        ("dlq_partition", str(record.partition).encode()),
        ("dlq_offset", str(record.offset).encode()),
        *record.headers,
    ]


def dead_letter_id(record: Record) -> str:
    """What names `record`'s dead letter: its event id, or where it lay when it carries none."""
    return header(list(record.headers), "ce_id") or f"{record.topic}:{record.partition}:{record.offset}"


def header(headers: Headers, name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode(errors="replace")
    return None


BatchHandler = Callable[[list[Record]], Awaitable[None]]
Batches = dict[Any, list[Record]]  # aiokafka's TopicPartition (untyped) → its records, in offset order


@dataclass(frozen=True)
class BatchWindow:
    """A poll that, under a steady flow, waits a few milliseconds for more records before handing them over.

    Whatever its size, a batch costs the same round trips — at the gateway a whole Kafka transaction, at a
    consumer a database commit and an offset commit — and at a few hundred records a second each poll would
    otherwise bring one or two: every process's CPU per record then goes to those round trips (README "A lean
    pipeline", seventh round). Only when busy: the poll found several records already waiting, arrived while
    the previous batch was handled. A record at a quiet Pôle's pace is handed over the moment it comes."""

    seconds: float = 0.010
    enough: int = 64  # no need to wait for more than this
    waiting: float = 0.001  # a poll answered this soon found its records already there

    async def poll(self, consumer: AIOKafkaConsumer, *, timeout_ms: int, max_records: int) -> Batches:
        began = time.monotonic()
        batches: Batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        count = sum(len(records) for records in batches.values())
        if count < 2 or time.monotonic() - began > self.waiting:
            return batches
        deadline = time.monotonic() + self.seconds
        while count < min(self.enough, max_records) and (left := deadline - time.monotonic()) > 0:
            more: Batches = await consumer.getmany(
                timeout_ms=max(1, round(left * 1000)), max_records=max_records - count
            )
            for tp, records in more.items():
                batches[tp] = [*batches.get(tp, ()), *records]
                count += len(records)
        return batches


STEADY = BatchWindow()


class SkippedOffsets:
    """Commits the positions a consumer reached without records to hand over: a transaction's commit
    marker takes an offset of its own, so a group that read everything would otherwise always show a
    lag of one per partition (and start again one record early after a restart)."""

    def __init__(self, kafka_consumer: AIOKafkaConsumer) -> None:
        self.consumer = kafka_consumer
        self.committed: dict[TopicPartition, int] = {}

    def note(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.update(offsets)

    async def commit_when_idle(self) -> None:
        moved = await self.moved()
        if moved:
            await self.consumer.commit(moved)
            self.note(moved)

    async def moved(self) -> dict[TopicPartition, int]:
        """The positions past the last committed offsets, where nothing was handed over."""
        moved: dict[TopicPartition, int] = {}
        for tp in self.consumer.assignment():
            if tp not in self.committed:
                self.committed[tp] = await self.consumer.committed(tp) or 0
            position = await self.consumer.position(tp)
            if position > self.committed[tp]:
                moved[tp] = position
        return moved


# A consumer's offset commits, at most two a second: one after every batch cost the broker and the consumer a
# request each, two per referral at a quiet Pôle's pace, where every batch is one record (a recipient's
# deliveries, a sender's status reports). Kafka's own auto-commit commits every 5 s.
COMMIT_EVERY = 0.5


class BackgroundCommits:
    """A consumer's offsets committed while it reads on: the loop does not wait for the broker's answer before
    its next poll (waiting for it made the median of two bare hops at 200/s 19 ms rather than 6, `maillage
    bench`'s floor). One commit in flight at a time, and at most one every `every` seconds; offsets noted
    meanwhile leave together in the next one, so they reach the broker in order and never go back. A commit that
    fails (a rebalance took the partition) is logged and left: its records come again, and handlers drop what
    they already hold by id — as they do the records of the last `every` seconds after a crash."""

    def __init__(
        self, kafka_consumer: AIOKafkaConsumer, skipped: SkippedOffsets, *, name: str, every: float = COMMIT_EVERY
    ) -> None:
        self.consumer = kafka_consumer
        self.skipped = skipped
        self.name = name
        self.every = every
        self.wanted: dict[TopicPartition, int] = {}
        self.task: asyncio.Task[None] | None = None

    def add(self, offsets: dict[TopicPartition, int]) -> None:
        if not offsets:
            return
        self.wanted.update(offsets)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._commit(), name=f"{self.name} commits")

    async def _commit(self) -> None:
        while self.wanted:
            offsets, self.wanted = self.wanted, {}
            try:
                await self.consumer.commit(offsets)
            except KafkaError as exc:
                log.warning(
                    "offsets not committed, records come again",
                    extra={"consumer": self.name, "error": type(exc).__name__},
                )
            else:
                self.skipped.note(offsets)
            await asyncio.sleep(self.every)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


async def read_to(
    kafka_consumer: AIOKafkaConsumer, batches: Mapping[TopicPartition, Sequence[Record]]
) -> dict[TopicPartition, int]:
    """Where each partition's reading stands once `batches` (just polled) are handled: past its last record, and
    past the transaction markers read with it. A transaction's commit marker takes an offset of its own, and a
    reader only sees a transaction's records once its marker is written: the marker usually comes in the same
    fetch, and committing past it spares the commit `SkippedOffsets` would make at the next idle poll — one
    broker request less per transaction read."""
    reached: dict[TopicPartition, int] = {}
    for tp, records in batches.items():
        reached[tp] = records[-1].offset + 1
        with contextlib.suppress(IllegalStateError):  # taken by a rebalance meanwhile: its commit fails anyway
            reached[tp] = max(reached[tp], await kafka_consumer.position(tp))
    return reached


async def consume_forever(kafka_consumer: AIOKafkaConsumer, handle: BatchHandler, *, name: str) -> None:
    """At-least-once loop: handle a batch durably, then commit its offsets (in the background: `BackgroundCommits`).
    Handlers are idempotent by id."""
    backoff = 0.5
    skipped = SkippedOffsets(kafka_consumer)
    commits = BackgroundCommits(kafka_consumer, skipped, name=name)
    try:
        while True:
            batches = await STEADY.poll(kafka_consumer, timeout_ms=500, max_records=1000)
            records = [r for part in batches.values() for r in part]
            if not records:
                with contextlib.suppress(KafkaError):  # a rebalance meanwhile: the next idle turn does it
                    commits.add(await skipped.moved())
                continue
            reached = await read_to(kafka_consumer, batches)
            try:
                await handle(records)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("batch not stored, retrying", extra={"consumer": name, "error": type(exc).__name__})
                for tp in batches:
                    kafka_consumer.seek(tp, batches[tp][0].offset)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.5
            commits.add(reached)
    finally:
        commits.cancel()
