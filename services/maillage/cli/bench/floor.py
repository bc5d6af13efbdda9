"""The bare floor a referral's latency is compared with: two Kafka hops and nothing else, on the same broker.

A source produces small records at a fixed rate (open loop) to a first topic; a relay consumes them
(`read_committed`) and produces each to a second topic; a sink consumes that one (`read_committed`) and notes
when each record arrived. The same producer and consumer settings as the services (`bus.producer`,
`bus.consumer`), on topics with the network's partitions. Two modes: idempotent producers, and one Kafka
transaction per record on each hop (the relay commits its consumed offset in the record's transaction, as a
consume-transform-produce hop does). A referral crosses two hops (sender's outbox → gateway → recipient);
no database, no HTTP, no cryptography here: what is left is Kafka's own cost and wake-ups.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.console import Console

from maillage.cli.bench.machine import CpuMeter, ms_per
from maillage.cli.bench.spread import Spread
from maillage.core.config.network import Network
from maillage.core.messaging import bus

_STAMP = struct.Struct(">Qd")  # sequence number, time.time() when the source began sending it


@dataclass(frozen=True)
class Floor:
    rate: float
    transactional: bool
    sent: int
    arrived: int
    total: Spread
    send_lag_max_ms: float  # how far the source fell behind its schedule (a hop slower than the rate)
    # With `--profile`: CPU ms per record of the broker and of this process (the three clients), sent to arrived.
    cpu_ms: dict[str, float] | None = None

    @property
    def mode(self) -> str:
        return mode_name(transactional=self.transactional)


def mode_name(*, transactional: bool) -> str:
    return "a transaction per record" if transactional else "idempotent producers"


async def measure_floor(
    network: Network,
    *,
    bootstrap: str,
    prefix: str,
    rate: float,
    duration: float,
    warmup: float,
    transactional: bool,
    console: Console,
    meter: CpuMeter | None = None,
) -> Floor:
    mode = "txn" if transactional else "idem"
    first, second = f"{prefix}floor.{mode}.a", f"{prefix}floor.{mode}.b"
    k = network.kafka
    await bus.ensure_topics(
        bootstrap,
        [first, second],
        partitions=k.partitions,
        replication_factor=k.replication_factor,
        min_insync_replicas=k.min_insync_replicas,
    )
    hops = _Hops(bootstrap, first=first, second=second, transactional=transactional, group=f"{prefix}floor.{mode}")
    await hops.start()
    try:
        console.log(f"bare floor, {mode_name(transactional=transactional)}: {duration:g}s at {rate:g}/s")
        await hops.play(rate=rate, seconds=warmup, first_seq=0)
        base = round(warmup * rate)
        before = meter.sample() if meter else None
        sent, lag = await hops.play(rate=rate, seconds=duration, first_seq=base)
        arrived = await hops.arrivals(range(base, base + sent), timeout=30)
        cpu = None
        if meter and before:
            cpu = ms_per(CpuMeter.used(before, meter.sample()), len(arrived))
    finally:
        await hops.stop()
    return Floor(
        rate=rate,
        transactional=transactional,
        sent=sent,
        arrived=len(arrived),
        total=Spread.of(list(arrived.values())),
        send_lag_max_ms=round(lag * 1000, 1),
        cpu_ms=cpu,
    )


class _Hops:
    """The source, the relay and the sink, each with its own client, in this process."""

    def __init__(self, bootstrap: str, *, first: str, second: str, transactional: bool, group: str) -> None:
        self.first, self.second, self.group = first, second, group
        self.transactional = transactional
        txn = (lambda name: f"{group}.{name}") if transactional else (lambda name: None)
        self.source = bus.producer(bootstrap, transactional_id=txn("source"))
        self.relay_out = bus.producer(bootstrap, transactional_id=txn("relay"))
        self.relay_in = bus.consumer(bootstrap, first, group_id=f"{group}.relay")
        self.sink = bus.consumer(bootstrap, second, group_id=f"{group}.sink")
        self.latencies: dict[int, float] = {}
        self.got = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.committing: asyncio.Future[None] | None = None  # the relay's offset commits, idempotent mode
        self.uncommitted: list[tuple[list[asyncio.Future[object]], dict[Any, int]]] = []  # polls not committed yet

    async def start(self) -> None:
        for client in (self.source, self.relay_out, self.relay_in, self.sink):
            await client.start()
        for consumer in (self.relay_in, self.sink):
            await _assigned(consumer)
        self.tasks = [asyncio.create_task(self._relay()), asyncio.create_task(self._sink())]

    async def stop(self) -> None:
        for task in [*self.tasks, *([self.committing] if self.committing else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for client in (self.relay_in, self.sink, self.source, self.relay_out):
            await client.stop()

    async def play(self, *, rate: float, seconds: float, first_seq: int) -> tuple[int, float]:
        """Records `first_seq`… at `rate`, each at its own time; how many, and the worst lag behind schedule."""
        count, start, lag = round(seconds * rate), time.monotonic(), 0.0
        pending: list[asyncio.Future[object]] = []
        for i in range(count):
            due = start + i / rate
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            lag = max(lag, time.monotonic() - due)
            value = _STAMP.pack(first_seq + i, time.time())
            if self.transactional:
                async with self.source.transaction():
                    await self.source.send(self.first, value, key=value[:8])
            else:
                pending.append(await self.source.send(self.first, value, key=value[:8]))
        await asyncio.gather(*pending)
        return count, lag

    async def _relay(self) -> None:
        while True:
            batches = await self.relay_in.getmany(timeout_ms=1000)
            for tp, records in batches.items():
                if self.transactional:  # the records one by one, each in its transaction with its offset
                    for record in records:
                        async with self.relay_out.transaction():
                            await self.relay_out.send(self.second, record.value, key=record.key)
                            offsets = {tp: record.offset + 1}
                            await self.relay_out.send_offsets_to_transaction(offsets, f"{self.group}.relay")
            if not self.transactional and any(batches.values()):
                # The poll's records sent at once; their offsets committed once they are acknowledged, in order,
                # while the next poll goes on: at least once, as a lean relay does. Measured at 200/s, p50 of the
                # two hops: 49 ms waiting for the acknowledgements and a commit per partition before polling
                # again, 19 ms with one commit per poll, 6 ms with the commit in the background.
                sent = [
                    await self.relay_out.send(self.second, r.value, key=r.key) for rs in batches.values() for r in rs
                ]
                self.uncommitted.append((sent, {tp: rs[-1].offset + 1 for tp, rs in batches.items() if rs}))
                if self.committing is None or self.committing.done():
                    self.committing = asyncio.ensure_future(self._commit_uncommitted())

    async def _commit_uncommitted(self) -> None:
        """The polls' offsets committed in order, each once its records are acknowledged; the polls that came
        meanwhile in one commit (a chain of one commit per poll, each awaiting the one before, grew past
        Python's recursion limit when cancelled at the end of a run whose commits fell behind: seen at 200/s)."""
        while self.uncommitted:
            polls, self.uncommitted = self.uncommitted, []
            await asyncio.gather(*(f for sent, _ in polls for f in sent))
            await self.relay_in.commit({tp: offset for _, offsets in polls for tp, offset in offsets.items()})

    async def _sink(self) -> None:
        while True:
            batches = await self.sink.getmany(timeout_ms=1000)
            now = time.time()
            for records in batches.values():
                for record in records:
                    seq, began = _STAMP.unpack(record.value or b"")
                    self.latencies[seq] = (now - began) * 1000
            if batches:
                self.got.set()

    async def arrivals(self, wanted: range, *, timeout: float) -> dict[int, float]:
        deadline = time.monotonic() + timeout
        while not all(seq in self.latencies for seq in wanted) and time.monotonic() < deadline:
            self.got.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.got.wait(), timeout=max(0.01, deadline - time.monotonic()))
        return {seq: self.latencies[seq] for seq in wanted if seq in self.latencies}


async def _assigned(consumer: AIOKafkaConsumer, *, timeout: float = 60.0) -> None:
    """Until the group gave the consumer its partitions, at the end of each: only what is sent next counts."""
    deadline = time.monotonic() + timeout
    while not consumer.assignment():
        if time.monotonic() > deadline:
            raise TimeoutError("the bare floor's consumer got no partitions")
        await consumer.getmany(timeout_ms=100)
    partitions: list[TopicPartition] = list(consumer.assignment())
    await consumer.seek_to_end(*partitions)
