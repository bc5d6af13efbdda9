"""Referral latency end to end: POST on the sender → the referral stored in the recipient's inbox.

The gateway and two agencies run as real uvicorn servers (`maillage serve ...` subprocesses); referrals are
POSTed at a fixed rate on an open-loop schedule (each at its own time, whatever the previous answers), and
each one's latency runs from the clock read just before its request to the `received_at` the recipient
stored in its own database (same machine, same clock).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import orjson
from rich.console import Console

from maillage.cli.bench import repository
from maillage.cli.bench.broker import create_topics
from maillage.cli.bench.fixtures import Subject, consent_body, make_subjects, referral_body, service_keys, system_token
from maillage.cli.bench.load import KeepAliveClient, Sent, open_loop
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

    @property
    def complete(self) -> bool:
        return self.sent == self.accepted == self.arrived


async def measure_latency(
    opts: BenchOptions, network: Network, *, bootstrap: str, prefix: str, data_dir: Path, console: Console
) -> Latency:
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
        with closing(KeepAliveClient(sender_url, headers=auth)) as load:
            return await _latency_run(opts, load, subjects, rng, data_dir=data_dir, console=console)


async def _latency_run(
    opts: BenchOptions,
    client: KeepAliveClient,
    subjects: list[Subject],
    rng: random.Random,
    *,
    data_dir: Path,
    console: Console,
) -> Latency:
    console.log(f"warming up: {opts.warmup:g}s at {opts.rate:g} referrals/s")
    warm = await open_loop(client, _bodies(subjects, rng, opts, seconds=opts.warmup), rate=opts.rate)
    await _arrivals(warm, data_dir=data_dir, recipient=opts.recipient, timeout=30)
    console.log(f"measuring: {opts.duration:g}s at {opts.rate:g} referrals/s, open loop")
    sent = await open_loop(client, _bodies(subjects, rng, opts, seconds=opts.duration), rate=opts.rate)
    arrived = await _arrivals(sent, data_dir=data_dir, recipient=opts.recipient, timeout=30)
    return _figures(opts, sent, arrived, data_dir=data_dir)


def _figures(opts: BenchOptions, sent: list[Sent], arrived: dict[str, datetime], *, data_dir: Path) -> Latency:
    done = {s.event_id: s for s in sent if s.event_id is not None and s.event_id in arrived}
    return Latency(
        rate=opts.rate,
        duration=opts.duration,
        warmup=opts.warmup,
        sent=len(sent),
        accepted=sum(s.event_id is not None for s in sent),
        arrived=len(done),
        total=Spread.of([ms(arrived[i], s.sent_at) for i, s in done.items()]),
        total_from_schedule=Spread.of([ms(arrived[i], s.due_at) for i, s in done.items()]),
        send_lag_max_ms=round(max((s.lag_s for s in sent), default=0.0) * 1000, 1),
        stages=_stages(done, arrived, data_dir=data_dir, sender=opts.sender),
        failures=dict(Counter(s.error for s in sent if s.error)),
    )


def _stages(done: dict[str, Sent], arrived: dict[str, datetime], *, data_dir: Path, sender: str) -> dict[str, Spread]:
    accepted = repository.sender_stored(data_dir, agency=sender)
    decided = repository.gateway_decided(data_dir)
    ids = [i for i in done if i in accepted and i in decided]
    return {
        "sender stored it": Spread.of([ms(accepted[i], done[i].sent_at) for i in ids]),
        "gateway decided it": Spread.of([ms(decided[i], accepted[i]) for i in ids]),
        "recipient stored it": Spread.of([ms(arrived[i], decided[i]) for i in ids]),
    }


def _bodies(subjects: list[Subject], rng: random.Random, opts: BenchOptions, *, seconds: float) -> list[bytes]:
    return [
        orjson.dumps(referral_body(rng.choice(subjects), rng, recipient=opts.recipient))
        for _ in range(round(seconds * opts.rate))
    ]


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
