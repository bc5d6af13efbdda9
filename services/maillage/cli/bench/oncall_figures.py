"""The on-call part's figures: every (alert, worker) latency, where the time went, and what it cost."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from maillage.cli.bench import repository
from maillage.cli.bench.load import Sent
from maillage.cli.bench.machine import others_percent
from maillage.cli.bench.options import BenchOptions
from maillage.cli.bench.sockets import Arrivals, lags_within
from maillage.cli.bench.spread import Spread, ms


@dataclass(frozen=True)
class Oncall:
    """POST /v1/alerts on the sender → the `alert` message on each on-call worker's WebSocket."""

    workers: int
    connected: int
    socket_processes: int
    ws_compression: bool
    rate: float
    duration: float
    warmup: float
    sent: int
    accepted: int
    stored: int  # alerts in the dispatcher's database
    reached_some: int  # alerts at least one worker got
    reached_all: int  # alerts every connected worker got
    pairs_expected: int  # accepted alerts x connected workers
    pairs_missing: int
    every_pair: Spread  # one figure per (alert, worker): the requirement's measure
    first_worker: Spread  # per alert, the first worker to get it
    last_worker: Spread  # per alert, the last worker to get it
    every_pair_from_schedule: Spread
    send_lag_max_ms: float
    # Each stage from the end of the one before, from the timestamps each service stored.
    stages: dict[str, Spread]
    failures: dict[str, int]
    # Where the CPU went while the alerts were sent: % of one core per process, and the machine's busy %.
    cpu_percent: dict[str, float]
    machine_busy_percent: float
    # The machine's busy time that none of the processes above account for (% of one core): other work on
    # the machine during the run, which takes cores from the services and skews every figure.
    others_percent: float
    # CPU ms per alert and process, from the first POST until the last alert reached every socket, and how
    # long after the last POST that was (a dispatcher that keeps up drains within a fraction of a second).
    cpu_ms_per_alert: dict[str, float]
    drain_seconds: float
    # How late a 10 ms timer fired in the socket processes while the alerts were sent: whether the
    # client kept up (a late client stamps arrivals late, so it can only make the figures worse).
    client_loop_lag: Spread
    sockets_closed: int
    other_messages: int
    connect_seconds: float
    # With `--profile`: the requests the broker received per alert, by API, from the first POST measured until
    # every socket had every alert.
    broker_requests_per_alert: dict[str, float] | None = None

    @property
    def complete(self) -> bool:
        return self.sent == self.accepted == self.stored and self.connected == self.workers and self.pairs_missing == 0


@dataclass(frozen=True)
class CpuUse:
    percent: dict[str, float]  # per process, % of one core while the alerts were sent
    machine_busy: float  # % of all cores, over the same time
    ms_per_alert: dict[str, float]  # per process, from the first POST until every socket had every alert
    drain_s: float  # from the last POST until every socket had every alert


@dataclass(frozen=True)
class Measured:
    """What one on-call run gathered, before it is summed up."""

    sent: list[Sent]
    seen: Arrivals
    connected: int
    connect_s: float
    window: tuple[float, float]  # epoch seconds of the first and the last POST
    cpu: CpuUse
    broker_requests: dict[str, float] | None = None  # per alert, by API (`--profile`)


def oncall_figures(opts: BenchOptions, run: Measured, *, data_dir: Path) -> Oncall:
    accepted = {s.event_id: s for s in run.sent if s.event_id is not None}
    per_alert = _per_alert(accepted, run.seen)
    reached = {event_id: times for event_id, times in per_alert.items() if times}
    received = repository.dispatcher_received(data_dir)
    pairs = _pairs(accepted, per_alert, schedule=False)
    return Oncall(
        workers=opts.workers,
        connected=run.connected,
        socket_processes=opts.socket_processes,
        ws_compression=opts.ws_compression,
        rate=opts.alert_rate,
        duration=opts.oncall_duration,
        warmup=opts.warmup,
        sent=len(run.sent),
        accepted=len(accepted),
        stored=sum(event_id in received for event_id in accepted),
        reached_some=len(reached),
        reached_all=sum(len(times) == run.connected for times in per_alert.values()),
        pairs_expected=len(accepted) * run.connected,
        pairs_missing=len(accepted) * run.connected - len(pairs),
        every_pair=Spread.of(pairs),
        first_worker=Spread.of([(min(t) - accepted[i].sent_at.timestamp()) * 1000 for i, t in reached.items()]),
        last_worker=Spread.of([(max(t) - accepted[i].sent_at.timestamp()) * 1000 for i, t in reached.items()]),
        every_pair_from_schedule=Spread.of(_pairs(accepted, per_alert, schedule=True)),
        send_lag_max_ms=round(max((s.lag_s for s in run.sent), default=0.0) * 1000, 1),
        stages=_stages(accepted, reached, received, data_dir=data_dir, sender=opts.sender),
        failures=dict(Counter(s.error for s in run.sent if s.error)),
        cpu_percent=run.cpu.percent,
        machine_busy_percent=run.cpu.machine_busy,
        others_percent=others_percent(run.cpu.percent, busy=run.cpu.machine_busy),
        cpu_ms_per_alert=run.cpu.ms_per_alert,
        drain_seconds=round(run.cpu.drain_s, 2),
        client_loop_lag=Spread.of([lag * 1000 for lag in lags_within(run.seen.lags, *run.window)]),
        sockets_closed=len(run.seen.closed),
        other_messages=run.seen.other,
        connect_seconds=round(run.connect_s, 1),
        broker_requests_per_alert=run.broker_requests,
    )


def _per_alert(accepted: dict[str, Sent], seen: Arrivals) -> dict[str, list[float]]:
    """Accepted alert → when each worker got it (epoch seconds); warm-up alerts left out."""
    per_alert: dict[str, list[float]] = {event_id: [] for event_id in accepted}
    for arrivals in seen.by_worker.values():
        for alert_id, at in arrivals.items():
            if alert_id in per_alert:
                per_alert[alert_id].append(at)
    return per_alert


def _pairs(accepted: dict[str, Sent], per_alert: dict[str, list[float]], *, schedule: bool) -> list[float]:
    """One latency (ms) per (alert, worker), from the POST's start or, with `schedule`, from its due time."""
    pairs: list[float] = []
    for event_id, times in per_alert.items():
        sent = accepted[event_id]
        start = (sent.due_at if schedule else sent.sent_at).timestamp()
        pairs += [(at - start) * 1000 for at in times]
    return pairs


def _stages(
    accepted: dict[str, Sent],
    reached: dict[str, list[float]],
    received: dict[str, datetime],
    *,
    data_dir: Path,
    sender: str,
) -> dict[str, Spread]:
    stored = repository.sender_stored(data_dir, agency=sender)
    decided = repository.gateway_decided(data_dir)
    ids = [i for i in reached if i in stored and i in decided and i in received]
    at = {i: datetime.fromtimestamp(min(reached[i]), UTC) for i in ids}
    last = {i: datetime.fromtimestamp(max(reached[i]), UTC) for i in ids}
    return {
        "sender stored it": Spread.of([ms(stored[i], accepted[i].sent_at) for i in ids]),
        "gateway decided it": Spread.of([ms(decided[i], stored[i]) for i in ids]),
        "dispatcher received it": Spread.of([ms(received[i], decided[i]) for i in ids]),
        "first worker got it": Spread.of([ms(at[i], received[i]) for i in ids]),
        "last worker got it": Spread.of([ms(last[i], at[i]) for i in ids]),
    }
