"""The gateway's own work per event, without Kafka (`python -m maillage.cli.bench.decision`, the `decision` part).

The throughput part's CPU per event is the gateway's work and its Kafka client's, on a machine shared with the
broker and the bench; here the same referral records are handed straight to a gateway — its database, its policy,
its crypto threads, set up as a served gateway is (`settle_heap`) — in batches as its loop would poll them, and
each step's CPU is counted, every thread of the process: opening (verify, unseal, validate), deciding (and its
unit of work), sealing and signing the shares. Beside them, the CPU spent in the garbage collector meanwhile. No
broker, no network: the steadiest figure of the gateway's Python, to tell one change of its code from another.
It runs in a process of its own, so that the bench's own heap is not what is collected.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import time
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from maillage.cli.bench.fixtures import consent_envelopes, make_subjects, referral_envelopes, service_keys
from maillage.cli.bench.sockets import run_fast
from maillage.core.crypto.keys import GATEWAY
from maillage.core.crypto.trust import Trust
from maillage.core.lifecycle import settle_heap
from maillage.core.messaging.bus import Consumed
from maillage.core.messaging.envelope import Envelope
from maillage.core.storage.db import make_engine, session_factory
from maillage.core.storage.migrations import upgrade
from maillage.gateway.crypto import CryptoThreads
from maillage.gateway.models import SCHEMA
from maillage.gateway.services import Gateway
from maillage.gateway.settings import GatewaySettings

WARMUP_BATCHES = 2  # decided first, not counted: the statements compiled, the caches filled


@dataclass(frozen=True)
class DecisionCost:
    """CPU per event of each step of a batch's way through the gateway, Kafka aside (every thread)."""

    events: int  # counted, after the warm-up
    batch: int
    open_us: float
    decide_us: float
    seal_us: float
    collector_us: float  # of the three, the garbage collector's
    collections: int
    shares: int  # the shares the counted events gave (each sealed to its recipient)
    per_batch_us: list[float] = field(default_factory=list)  # each counted batch's CPU per event, all steps

    @property
    def total_us(self) -> float:
        return self.open_us + self.decide_us + self.seal_us

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"total_us": round(self.total_us, 1)}

    @classmethod
    def of_json(cls, doc: dict[str, Any]) -> DecisionCost:
        return cls(**{k: v for k, v in doc.items() if k != "total_us"})


class _Collector:
    """The CPU the garbage collector takes, from its own callbacks."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = 0
        self._began = 0.0

    def __call__(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.process_time()
        else:
            self.seconds += time.process_time() - self._began
            self.collections += 1


@dataclass(frozen=True)
class Workload:
    events: int = 10_000
    batch: int = 500  # records per batch, as the gateway's poll hands them over under load
    subjects: int = 300
    sender: str = "refuge-liege"
    recipient: str = "cpas-seraing"
    seed: int = 15


async def decide(*, data_dir: Path, network_file: Path, work: Workload) -> DecisionCost:
    settings = GatewaySettings(data_dir=data_dir, network_file=network_file)
    keys = service_keys(settings)
    network, batch, sender, recipient = settings.network, work.batch, work.sender, work.recipient
    engine = make_engine(settings.db_url())
    await upgrade(engine, SCHEMA)
    gateway = Gateway(network=network, policy=settings.policy, topics=settings.topics, sessions=session_factory(engine))
    await gateway.start()
    crypto = CryptoThreads(Trust.load(keys, GATEWAY))
    try:
        source = Trust.load(keys, sender)
        rng = random.Random(work.seed)
        subjects = make_subjects(work.subjects, rng)
        topic = settings.topics.submitted
        consents = _records(topic, consent_envelopes(subjects, sender=source, recipient=recipient), offset=0)
        await gateway.process(await crypto.open(consents))
        referrals = referral_envelopes(
            subjects, work.events + WARMUP_BATCHES * batch, rng, sender=source, recipient=recipient
        )
        records = _records(topic, referrals, offset=len(consents))
        batches = [records[i : i + batch] for i in range(0, len(records), batch)]
        for warm in batches[:WARMUP_BATCHES]:
            await crypto.seal(await gateway.process(await crypto.open(warm)))
        settle_heap()  # as a served gateway's, once started
        collector = _Collector()
        gc.callbacks.append(collector)
        steps, shares, per_batch = [0.0, 0.0, 0.0], 0, list[float]()
        deliver = settings.topics.deliver(recipient)
        try:
            for counted in batches[WARMUP_BATCHES:]:
                began = time.process_time()
                arrivals = await crypto.open(counted)
                opened = time.process_time()
                decided = await gateway.process(arrivals)
                done = time.process_time()
                published = await crypto.seal(decided)
                sealed = time.process_time()
                for i, seconds in enumerate((opened - began, done - opened, sealed - done)):
                    steps[i] += seconds
                shares += sum(1 for r in published if r.topic == deliver)
                per_batch.append(round((sealed - began) / len(counted) * 1e6, 1))
        finally:
            gc.callbacks.remove(collector)
        counted_events = sum(len(b) for b in batches[WARMUP_BATCHES:])
        open_us, decide_us, seal_us = (s / counted_events * 1e6 for s in steps)
        return DecisionCost(
            events=counted_events,
            batch=batch,
            open_us=round(open_us, 1),
            decide_us=round(decide_us, 1),
            seal_us=round(seal_us, 1),
            collector_us=round(collector.seconds / counted_events * 1e6, 1),
            collections=collector.collections,
            shares=shares,
            per_batch_us=per_batch,
        )
    finally:
        crypto.close()
        await engine.dispose()


def _records(topic: str, envelopes: list[Envelope], *, offset: int) -> list[Consumed]:
    return [Consumed(topic, 0, offset + i, *e.to_kafka()) for i, e in enumerate(envelopes)]


async def measure_decision(*, data_dir: Path, network_file: Path, work: Workload) -> DecisionCost:
    """The part, in a process of its own: its one line of JSON read back."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        __name__,
        "--data-dir",
        str(data_dir),
        "--network",
        str(network_file),
        "--workload",
        orjson.dumps(asdict(work)).decode(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the decision part failed (exit {process.returncode}): {err.decode()[-2000:]}")
    return DecisionCost.of_json(orjson.loads(out.splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--network", type=Path, required=True)
    parser.add_argument("--workload", type=orjson.loads, default="{}")
    args = parser.parse_args()
    run_fast(_written(decide(data_dir=args.data_dir, network_file=args.network, work=Workload(**args.workload))))


async def _written(measured: Coroutine[Any, Any, DecisionCost]) -> None:
    cost = await measured
    sys.stdout.buffer.write(orjson.dumps(cost.to_json()) + b"\n")


if __name__ == "__main__":
    main()
