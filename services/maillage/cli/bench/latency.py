"""Referral latency end to end: POST on the sender → the referral stored in the recipient's inbox.

The gateway and two agencies run as real uvicorn servers (`maillage serve ...` subprocesses); referrals are
POSTed at a fixed rate on an open-loop schedule (each at its own time, whatever the previous answers), and
each one's latency runs from the clock read just before its request to the `received_at` the recipient
stored in its own database (same machine, same clock). One run per rate asked for, on the same servers.

With `--profile`, each run also reads, from its first POST until its last referral was stored, the CPU every
process used (/proc: the broker, the gateway, both agencies, and the load generator apart) and the requests the
broker received by API (its own request metrics, over JMX), both per referral.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

import httpx
import orjson
from rich.console import Console

from maillage.cli.bench import record_times, repository
from maillage.cli.bench.broker import create_topics
from maillage.cli.bench.broker_requests import BrokerRequests, per_event
from maillage.cli.bench.fixtures import Subject, consent_body, make_subjects, referral_body, service_keys, system_token
from maillage.cli.bench.load import KeepAliveClient, Sent, open_loop
from maillage.cli.bench.machine import CpuMeter, CpuSample, ms_per
from maillage.cli.bench.options import BenchOptions
from maillage.cli.bench.servers import servers, service_env, wait_ready
from maillage.cli.bench.spread import Spread, ms
from maillage.core.config.network import Network
from maillage.core.messaging.topics import Topics
from maillage.core.polling import eventually
from maillage.gateway.settings import GatewaySettings


@dataclass(frozen=True)
class Latency:
    rate: float
    duration: float
    warmup: float
    sent: int
    accepted: int
    arrived: int
    total: Spread
    # The same arrivals measured from each request's scheduled time rather than from its actual start;
    # the two agree when the load generator kept to its schedule (see send_lag_max_ms).
    total_from_schedule: Spread
    send_lag_max_ms: float
    # Where the time went, from the timestamps each service stored (all on this machine's clock).
    stages: dict[str, Spread]
    failures: dict[str, int]
    # With `--profile`: from the first POST measured until the last referral was stored at the recipient.
    profile: Profile | None = None

    @property
    def complete(self) -> bool:
        return self.sent == self.accepted == self.arrived


# Where the network is said to saturate: the first rate at which POST → inbox p99 exceeds this.
SATURATION_P99_MS = 250.0


@dataclass(frozen=True)
class Saturation:
    """The latency runs in increasing rate, the climb's included, up to the first whose p99 exceeds
    SATURATION_P99_MS or whose referrals did not all arrive; the climb stops there."""

    runs: list[Latency]

    @staticmethod
    def within(lat: Latency) -> bool:
        return lat.complete and lat.total.p99_ms <= SATURATION_P99_MS

    @property
    def first_over(self) -> float | None:
        """The first rate whose p99 exceeded the threshold; None when none did, up to the highest climbed."""
        return next((lat.rate for lat in self.runs if not self.within(lat)), None)

    @property
    def highest_within(self) -> float | None:
        return max((lat.rate for lat in self.runs if self.within(lat)), default=None)

    def saturates_below(self, rate: float) -> bool | None:
        """Whether p99 exceeded the threshold at some rate under `rate`; None when the climb stopped short of it
        without doing so (not measured)."""
        first_over = self.first_over
        if first_over is not None:
            return first_over < rate
        return None if max((lat.rate for lat in self.runs), default=0.0) < rate else False


@dataclass(frozen=True)
class Profile:
    # CPU ms per referral of each process (the broker's included; "bench (partner system)" is the load
    # generator, which stands for the sender's case-management system and is not counted in "all services").
    cpu_ms: dict[str, float]
    # Requests the broker received per referral, by API, the most frequent first; None without JMX.
    broker_requests: dict[str, float] | None
    # The same processes with no referral at all, over a few seconds before the runs: % of one core each (the
    # cost of being there — consumers polling, heartbeats — which a low rate divides among few referrals).
    idle_percent: dict[str, float] = field(default_factory=dict)
    # Of `cpu_ms`, what the broker's JIT compiler took per referral: the warm-up of a broker started for the
    # bench, which a broker that has run for a while no longer pays.
    compiling_ms: dict[str, float] = field(default_factory=dict)

    @property
    def cpu_ms_all(self) -> float:
        return round(sum(ms for name, ms in self.cpu_ms.items() if name != LOAD_GENERATOR), 2)

    @property
    def broker_requests_all(self) -> float | None:
        return None if self.broker_requests is None else round(sum(self.broker_requests.values()), 1)


LOAD_GENERATOR = "bench (partner system)"
IDLE_SECONDS = 5.0


@dataclass(frozen=True)
class Probes:
    """What a profiled run reads: the processes' CPU, and the broker's request counts when JMX is on."""

    meter: CpuMeter
    requests: BrokerRequests | None

    async def begin(self) -> tuple[CpuSample, Counter[str] | None]:
        # The request counts read first, the CPU then: the broker's work answering JMX stays out of the window.
        counts = await self.requests.sample() if self.requests else None
        return self.meter.sample(), counts

    async def end(self) -> tuple[CpuSample, Counter[str] | None]:
        cpu = self.meter.sample()
        return cpu, await self.requests.sample() if self.requests else None

    async def idle(self, seconds: float = IDLE_SECONDS) -> dict[str, float]:
        before = self.meter.sample()
        await asyncio.sleep(seconds)
        percent, _ = CpuMeter.percent(before, self.meter.sample())
        return dict(sorted(percent.items(), key=lambda kv: -kv[1]))

    @staticmethod
    def profile(
        before: tuple[CpuSample, Counter[str] | None],
        after: tuple[CpuSample, Counter[str] | None],
        *,
        referrals: int,
        idle: dict[str, float],
    ) -> Profile:
        cpu = ms_per(CpuMeter.used(before[0], after[0]), referrals)
        compiling_ms = ms_per(CpuMeter.compiling(before[0], after[0]), referrals)
        counts = None if before[1] is None or after[1] is None else per_event(before[1], after[1], events=referrals)
        ordered = dict(sorted(cpu.items(), key=lambda kv: -kv[1]))
        return Profile(cpu_ms=ordered, broker_requests=counts, idle_percent=idle, compiling_ms=compiling_ms)


async def measure_latency(
    opts: BenchOptions,
    network: Network,
    *,
    bootstrap: str,
    prefix: str,
    data_dir: Path,
    console: Console,
    kafka_pid: int | None = None,
    requests: BrokerRequests | None = None,
) -> tuple[list[Latency], Saturation | None]:
    """One run per rate of `opts.rates`, on the same servers, each after its own warm-up; then the climb of
    `opts.ladder` above them (unprofiled), until a run's p99 exceeds SATURATION_P99_MS."""
    await create_topics(bootstrap, network, Topics(prefix=prefix))
    keys = service_keys(GatewaySettings(network_file=opts.network_file, data_dir=data_dir))
    auth = {"authorization": f"Bearer {system_token(keys, opts.sender)}"}
    env = service_env(bootstrap=bootstrap, network_file=opts.network_file, data_dir=data_dir, prefix=prefix)
    wanted = [
        ("gateway", ["gateway"]),
        (opts.sender, ["agency", opts.sender]),
        (opts.recipient, ["agency", opts.recipient]),
    ]
    rng = random.Random(200)
    subjects = make_subjects(min(opts.subjects, 50), rng)
    console.log("starting the gateway and two agencies as uvicorn servers")
    with servers(wanted, env=env, data_dir=data_dir) as running:
        await wait_ready(running)
        sender_url = running[opts.sender].url
        await _grant_consents(sender_url, subjects, headers=auth, recipient=opts.recipient)
        pids = {LOAD_GENERATOR: os.getpid(), "kafka": kafka_pid, **{n: s.process.pid for n, s in running.items()}}
        probes = Probes(CpuMeter(pids, jvms=("kafka",)), requests) if opts.profile else None
        idle: dict[str, float] = {}
        if probes:
            console.log(f"profile: every process's CPU over {IDLE_SECONDS:g} s with no referral")
            idle = await probes.idle()
        with closing(KeepAliveClient(sender_url, headers=auth)) as load:
            run = _Runner(
                opts,
                load,
                subjects,
                rng,
                data_dir=data_dir,
                console=console,
                probes=probes,
                idle=idle,
                bootstrap=bootstrap,
                topics=Topics(prefix=prefix),
            )
            runs = [await run(rate) for rate in opts.rates]
            return runs, await climb(run, runs, opts.ladder) if opts.ladder else None


class RunAt(Protocol):
    """One latency run at a rate, after its warm-up (unprofiled: the climb's runs)."""

    async def __call__(self, rate: float, *, profiled: bool = ...) -> Latency: ...


async def climb(run: RunAt, runs: list[Latency], ladder: tuple[float, ...]) -> Saturation:
    """The runs measured so far in increasing rate, then each rate of `ladder` above them, up to the first over
    the threshold."""
    climbed: list[Latency] = []
    for lat in sorted(runs, key=lambda lat: lat.rate):
        climbed.append(lat)
        if not Saturation.within(lat):
            return Saturation(climbed)
    top = max((lat.rate for lat in runs), default=0.0)
    for rate in sorted(r for r in ladder if r > top):
        lat = await run(rate, profiled=False)
        climbed.append(lat)
        if not Saturation.within(lat):
            break
    return Saturation(climbed)


@dataclass(frozen=True)
class _Runner:
    """One latency run per rate, on the same servers and the same partner system."""

    opts: BenchOptions
    client: KeepAliveClient
    subjects: list[Subject]
    rng: random.Random
    data_dir: Path
    console: Console
    probes: Probes | None
    idle: dict[str, float]
    bootstrap: str
    topics: Topics

    async def __call__(self, rate: float, *, profiled: bool = True) -> Latency:
        opts, recipient = self.opts, self.opts.recipient
        self.console.log(f"warming up: {opts.warmup:g}s at {rate:g} referrals/s")
        warm = await open_loop(self.client, self._bodies(rate, opts.warmup), rate=rate)
        await _arrivals(warm, data_dir=self.data_dir, recipient=recipient, timeout=30)
        self.console.log(f"measuring: {opts.duration:g}s at {rate:g} referrals/s, open loop")
        probes = self.probes if profiled else None
        before = await probes.begin() if probes else None
        sent = await open_loop(self.client, self._bodies(rate, opts.duration), rate=rate)
        arrived = await _arrivals(sent, data_dir=self.data_dir, recipient=recipient, timeout=30)
        profile = None
        if probes and before:
            profile = Probes.profile(before, await probes.end(), referrals=len(arrived), idle=self.idle)
        ids = [s.event_id for s in sent if s.event_id is not None]
        relayed = await record_times.sent_at(self.bootstrap, self.topics.submitted, ids)
        published = await record_times.sent_at(self.bootstrap, self.topics.deliver(recipient), ids)
        times = _Times(relayed=relayed, published=published)
        return _figures(opts, rate, sent, arrived, data_dir=self.data_dir, profile=profile, times=times)

    def _bodies(self, rate: float, seconds: float) -> list[bytes]:
        return [
            orjson.dumps(referral_body(self.rng.choice(self.subjects), self.rng, recipient=self.opts.recipient))
            for _ in range(round(seconds * rate))
        ]


def _figures(
    opts: BenchOptions,
    rate: float,
    sent: list[Sent],
    arrived: dict[str, datetime],
    *,
    data_dir: Path,
    profile: Profile | None,
    times: _Times,
) -> Latency:
    done = {s.event_id: s for s in sent if s.event_id is not None and s.event_id in arrived}
    return Latency(
        rate=rate,
        duration=opts.duration,
        warmup=opts.warmup,
        sent=len(sent),
        accepted=sum(s.event_id is not None for s in sent),
        arrived=len(done),
        total=Spread.of([ms(arrived[i], s.sent_at) for i, s in done.items()]),
        total_from_schedule=Spread.of([ms(arrived[i], s.due_at) for i, s in done.items()]),
        send_lag_max_ms=round(max((s.lag_s for s in sent), default=0.0) * 1000, 1),
        stages=_stages(done, arrived, data_dir=data_dir, sender=opts.sender, times=times),
        failures=dict(Counter(s.error for s in sent if s.error)),
        profile=profile,
    )


@dataclass(frozen=True)
class _Times:
    """event id → when the sender's outbox relay handed it to its producer, and when the gateway handed the
    recipient's share to its own (Kafka's CreateTime of each record)."""

    relayed: dict[str, datetime]
    published: dict[str, datetime]


def _stages(
    done: dict[str, Sent], arrived: dict[str, datetime], *, data_dir: Path, sender: str, times: _Times
) -> dict[str, Spread]:
    """Each stage from the end of the one before, by the timestamps each service stored and those Kafka kept
    with each record (one clock, this machine's; Kafka's to the millisecond)."""
    accepted = repository.sender_stored(data_dir, agency=sender)
    decided = repository.gateway_decided(data_dir)
    relayed, published = times.relayed, times.published
    ids = [i for i in done if i in accepted and i in decided and i in relayed and i in published]
    return {
        "sender stored it": Spread.of([ms(accepted[i], done[i].sent_at) for i in ids]),
        "its relay sent it": Spread.of([ms(relayed[i], accepted[i]) for i in ids]),
        "gateway decided it": Spread.of([ms(decided[i], relayed[i]) for i in ids]),
        "gateway sent the share": Spread.of([ms(published[i], decided[i]) for i in ids]),
        "recipient stored it": Spread.of([ms(arrived[i], published[i]) for i in ids]),
    }


async def _grant_consents(url: str, subjects: list[Subject], *, headers: dict[str, str], recipient: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as client:
        event_ids = [await _grant(client, subject, recipient=recipient) for subject in subjects]

        async def all_decided() -> bool:
            for event_id in event_ids:
                if (await client.get(f"/v1/events/{event_id}")).json()["state"] == "pending":
                    return False
            return True

        await eventually(all_decided, timeout=60, what="the gateway to record the consents", every=0.2)


async def _grant(client: httpx.AsyncClient, subject: Subject, *, recipient: str) -> str:
    response = await client.post("/v1/consents", json=consent_body(subject, recipient=recipient))
    response.raise_for_status()
    return str(response.json()["event_id"])


async def _arrivals(sent: list[Sent], *, data_dir: Path, recipient: str, timeout: float) -> dict[str, datetime]:
    """Wait until every accepted referral is in the recipient's inbox (or `timeout`); their received_at."""
    wanted = {s.event_id for s in sent if s.event_id is not None}
    deadline = time.monotonic() + timeout
    while True:
        found = repository.inbox_received(data_dir, agency=recipient)
        if wanted <= found.keys() or time.monotonic() > deadline:
            return {k: v for k, v in found.items() if k in wanted}
        await asyncio.sleep(0.2)
