"""Gateway throughput beside a bare Kafka passthrough, over the same pre-produced referral records.

referral.created records are pre-produced onto `maillage.submitted` exactly as an agency's outbox relay
would (`Envelope.to_kafka`), then real gateways — `--gateways` processes (gateway_process.py) sharing the
topic's partitions, as `maillage up --gateways N` runs them — decide them; the same records then go through
a bare consume→produce passthrough with the same consumer settings, in one process. All are warmed up on the
consent records first, so no timing includes a group join.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console

from maillage.cli.bench import repository
from maillage.cli.bench.broker import create_topics, producer
from maillage.cli.bench.fixtures import consent_envelopes, make_subjects, referral_envelopes, service_keys
from maillage.cli.bench.gateway_process import GatewayProcesses
from maillage.cli.bench.options import BenchOptions
from maillage.cli.bench.plain import PlainTrust
from maillage.cli.bench.servers import service_env
from maillage.core.config.network import Network
from maillage.core.crypto.trust import Trust
from maillage.core.messaging import bus
from maillage.core.messaging.envelope import Envelope
from maillage.gateway.settings import GatewaySettings


@dataclass(frozen=True)
class Timed:
    """A drain's wall-clock seconds, and the CPU seconds meanwhile of the processes deciding (every thread: the
    gateways' loop and crypto threads, or the passthrough's in the bench's own process)."""

    seconds: float
    cpu_seconds: float


@dataclass(frozen=True)
class Throughput:
    records: int
    seconds: float
    cpu_seconds: float = 0.0
    processes: int = 1  # deciding the records together
    shares: tuple[int, ...] = ()  # records each of them decided, when several

    @classmethod
    def of(cls, records: int, timed: Timed, *, shares: tuple[int, ...] = ()) -> Throughput:
        return cls(
            records=records,
            seconds=timed.seconds,
            cpu_seconds=timed.cpu_seconds,
            processes=max(1, len(shares)),
            shares=shares,
        )

    @property
    def events_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_event(self) -> float:
        """CPU per event of the processes deciding them (the broker's apart): steadier than the rate, which
        moves with whatever else the two cores do."""
        return self.cpu_seconds / self.records * 1e6 if self.records else 0.0


class Passthrough:
    """A bare consume→produce relay: the gateway's consumer settings, an idempotent producer, no
    transaction, no decision. The floor the gateway's throughput is compared with."""

    def __init__(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, *, topic: str) -> None:
        self.consumer = consumer
        self.producer = producer
        self.topic = topic
        self.processed = 0

    async def run_once(self, timeout_ms: int = 500) -> int:
        batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=1000)
        records = [r for part in batches.values() for r in part]
        if not records:
            return 0
        futures = [await self.producer.send(self.topic, r.value, key=r.key, headers=list(r.headers)) for r in records]
        await asyncio.gather(*futures)
        await self.consumer.commit({tp: recs[-1].offset + 1 for tp, recs in batches.items()})
        self.processed += len(records)
        return len(records)


async def produce(sender: AIOKafkaProducer, topic: str, envelopes: list[Envelope], *, chunk: int = 1000) -> None:
    """Publish as the outbox relay does; awaiting chunk by chunk rather than thousands of sends at once."""
    for start in range(0, len(envelopes), chunk):
        futures = []
        for envelope in envelopes[start : start + chunk]:
            key, value, headers = envelope.to_kafka()
            futures.append(await sender.send(topic, value, key=key, headers=headers))
        await asyncio.gather(*futures)


async def drain(runner: Passthrough, *, until: int, stall: float = 60.0) -> Timed:
    """Run batches until `until` records are done; the time from the first poll to the last commit."""
    started = last_progress = time.perf_counter()
    cpu_started = time.process_time()
    while runner.processed < until:
        if await runner.run_once():
            last_progress = time.perf_counter()
        elif time.perf_counter() - last_progress > stall:
            raise RuntimeError(f"{type(runner).__name__} stalled at {runner.processed}/{until} records")
    return Timed(seconds=time.perf_counter() - started, cpu_seconds=time.process_time() - cpu_started)


@asynccontextmanager
async def passthrough(bootstrap: str, source: str, target: str) -> AsyncIterator[Passthrough]:
    consumer = bus.consumer(bootstrap, source, group_id=f"{source}.bench-passthrough")
    await consumer.start()
    try:
        async with producer(bootstrap) as relay_producer:
            yield Passthrough(consumer, relay_producer, topic=target)
    finally:
        await consumer.stop()


async def measure_throughput(
    opts: BenchOptions, network: Network, *, bootstrap: str, prefix: str, data_dir: Path, console: Console
) -> tuple[Throughput, Throughput, dict[str, int]]:
    """The gateway's throughput, signed and sealed, and the bare passthrough's over the same records."""
    settings = _settings(opts, bootstrap=bootstrap, prefix=prefix, data_dir=data_dir)
    scratch = f"{prefix}bench.passthrough"
    partitions = _partitions(network, opts.gateways)
    await create_topics(bootstrap, network, settings.topics, extra=(scratch,), partitions=partitions)
    workload = _Workload(opts, sender=Trust.load(service_keys(settings), opts.sender))
    async with producer(bootstrap) as source, passthrough(bootstrap, settings.topics.submitted, scratch) as relay:
        await produce(source, settings.topics.submitted, workload.consents())
        gateway = await _time_gateways(opts, settings, source=source, workload=workload, console=console, relay=relay)
        relay.consumer.resume(*relay.consumer.assignment())
        console.log("passthrough: relaying the same records")
        passthrough_s = await drain(relay, until=workload.total)
    return gateway, Throughput.of(opts.events, passthrough_s), repository.gateway_outcomes(data_dir)


async def measure_unsealed(
    opts: BenchOptions, network: Network, *, bootstrap: str, prefix: str, data_dir: Path, console: Console
) -> Throughput:
    """The same gateways over the same kind of records with sealing and signing switched off (`PlainTrust`, on
    topics and a database of their own): what sealing and signing cost, as a ratio of the two."""
    settings = _settings(opts, bootstrap=bootstrap, prefix=prefix, data_dir=data_dir)
    await create_topics(bootstrap, network, settings.topics, partitions=_partitions(network, opts.gateways))
    workload = _Workload(opts, sender=PlainTrust.load(service_keys(settings), opts.sender))
    async with producer(bootstrap) as source:
        await produce(source, settings.topics.submitted, workload.consents())
        console.log("sealing and signing switched off:")
        return await _time_gateways(opts, settings, source=source, workload=workload, console=console, plain=True)


def _settings(opts: BenchOptions, *, bootstrap: str, prefix: str, data_dir: Path) -> GatewaySettings:
    return GatewaySettings(
        network_file=opts.network_file,
        kafka_bootstrap=bootstrap,
        topic_prefix=prefix,
        data_dir=data_dir,
        transactional_id=f"{prefix}gateway",
    )


def _partitions(network: Network, gateways: int) -> int:
    """The network's partitions, rounded up to a multiple of the gateways so that each decides as many."""
    return -(-network.kafka.partitions // gateways) * gateways


async def _time_gateways(
    opts: BenchOptions,
    settings: GatewaySettings,
    *,
    source: AIOKafkaProducer,
    workload: _Workload,
    console: Console,
    relay: Passthrough | None = None,
    plain: bool = False,
) -> Throughput:
    """The gateway processes (and the passthrough, if any) warmed up on the consents and held, the referrals
    produced: the seconds the processes took for them together, and their CPU meanwhile. The processes read
    `settings` from their environment, as served ones do."""
    env = service_env(
        bootstrap=settings.bootstrap,
        network_file=settings.network_file,
        data_dir=settings.data_dir,
        prefix=settings.topics.prefix,
    )
    async with GatewayProcesses.started(opts.gateways, env=env, plain=plain, logs=settings.data_dir) as gateways:
        console.log(
            f"warming up on {workload.warm} consents: {opts.gateways} gateway process(es) and the passthrough "
            "join their groups"
        )
        await gateways.until(
            lambda latest: sum(p.decided for p in latest) >= workload.warm and all(p.deciding for p in latest),
            what="warming up",
        )
        if relay is not None:
            await drain(relay, until=workload.warm)
            relay.consumer.pause(*relay.consumer.assignment())
        gateways.tell("hold")
        await gateways.until(lambda latest: all(p.held for p in latest), what="holding")
        before, cpu_before = gateways.shares, gateways.cpu_seconds
        console.log(f"pre-producing {workload.events:,} referral.created records")
        await produce(source, settings.topics.submitted, workload.referrals())
        console.log(f"gateway: {opts.gateways} process(es) deciding them")
        started = time.perf_counter()
        gateways.tell("run")
        until = sum(before) + workload.events
        await gateways.until(lambda latest: sum(p.decided for p in latest) >= until, what="deciding")
        timed = Timed(seconds=time.perf_counter() - started, cpu_seconds=gateways.cpu_seconds - cpu_before)
        shares = tuple(after - was for after, was in zip(gateways.shares, before, strict=True))
    return Throughput.of(workload.events, timed, shares=shares)


class _Workload:
    """The records of one run: a consent per person (the warm-up), then the referrals that are timed."""

    def __init__(self, opts: BenchOptions, *, sender: Trust) -> None:
        self.rng = random.Random(20_000)
        self.subjects = make_subjects(opts.subjects, self.rng)
        self.sender, self.recipient, self.events = sender, opts.recipient, opts.events
        self.warm = len(self.subjects)
        self.total = self.warm + opts.events

    def consents(self) -> list[Envelope]:
        return consent_envelopes(self.subjects, sender=self.sender, recipient=self.recipient)

    def referrals(self) -> list[Envelope]:
        return referral_envelopes(self.subjects, self.events, self.rng, sender=self.sender, recipient=self.recipient)
