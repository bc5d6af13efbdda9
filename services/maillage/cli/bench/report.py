"""The bench's report: its targets and verdicts, the table printed at the end, and the JSON file kept."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from maillage.cli.bench.decision import DecisionCost
from maillage.cli.bench.floor import Floor
from maillage.cli.bench.latency import SATURATION_P99_MS, Latency, Profile, Saturation
from maillage.cli.bench.oncall_figures import Oncall
from maillage.cli.bench.spread import Spread
from maillage.cli.bench.throughput import Throughput

# Issue 15's targets, on a 2-core machine: the latency ones relative to the bare floor of the same run.
TARGET_GATEWAY_EVENTS_PER_S = 6000.0
TARGET_RATIO = 0.3
TARGET_SEALING_RATIO = 0.7  # the gateway's throughput with sealing and signing ÷ without
TARGET_CPU_MS_PER_REFERRAL = 2.0
TARGET_LOW_RATE = 20.0  # at this rate and below, p50 and p99 each within 2 x the floor's
TARGET_LOW_RATE_FACTOR = 2.0
TARGET_HIGH_RATE_FACTOR = 3.0  # above it, p99 within 3 x the floor's p99
TARGET_ONCALL_P99_MS = 150.0
TARGET_SATURATION_RATE = 500.0  # p99 within SATURATION_P99_MS at every rate below it


@dataclass
class Report:
    started_at: str
    options: dict[str, Any]
    machine: dict[str, Any]
    gateway: Throughput | None = None
    passthrough: Throughput | None = None
    gateway_unsealed: Throughput | None = None  # sealing and signing switched off (bench/plain.py)
    gateway_outcomes: dict[str, int] = field(default_factory=dict)
    decision: DecisionCost | None = None  # the gateway's own work per event, no Kafka (bench/decision.py)
    floor: list[Floor] = field(default_factory=list)
    latency: list[Latency] = field(default_factory=list)
    saturation: Saturation | None = None  # the latency runs and the climb above them
    oncall: Oncall | None = None

    @property
    def ratio(self) -> float:
        if self.gateway is None or self.passthrough is None or not self.passthrough.events_per_s:
            return 0.0
        return self.gateway.events_per_s / self.passthrough.events_per_s

    @property
    def sealing_ratio(self) -> float:
        """The gateway's throughput with sealing and signing ÷ without: what they cost."""
        if self.gateway is None or self.gateway_unsealed is None or not self.gateway_unsealed.events_per_s:
            return 0.0
        return self.gateway.events_per_s / self.gateway_unsealed.events_per_s

    def floor_at(self, rate: float) -> Floor | None:
        """The bare floor with idempotent producers at `rate`: what a referral's two hops are compared with."""
        return next((f for f in self.floor if f.rate == rate and not f.transactional), None)

    def latency_marks(self, lat: Latency) -> tuple[bool | None, bool]:
        """Whether the run's p50 and p99 meet their targets against the floor at its rate (p50: None where
        only the p99 has one)."""
        floor = self.floor_at(lat.rate)
        if not lat.complete or floor is None or floor.arrived != floor.sent:
            return (False if lat.rate <= TARGET_LOW_RATE else None), False
        if lat.rate <= TARGET_LOW_RATE:
            return (
                lat.total.p50_ms <= TARGET_LOW_RATE_FACTOR * floor.total.p50_ms,
                lat.total.p99_ms <= TARGET_LOW_RATE_FACTOR * floor.total.p99_ms,
            )
        return None, lat.total.p99_ms <= TARGET_HIGH_RATE_FACTOR * floor.total.p99_ms

    def latency_verdict(self, lat: Latency) -> bool:
        p50, p99 = self.latency_marks(lat)
        return p50 is not False and p99

    @property
    def profiled(self) -> Latency | None:
        """The profiled latency run at the highest rate: where a referral's own cost shows best."""
        runs = [lat for lat in self.latency if lat.profile is not None]
        return max(runs, key=lambda lat: lat.rate, default=None)

    def verdicts(self) -> dict[str, bool]:
        profiled = self.profiled
        found = {
            "gateway_events_per_s": bool(self.gateway and self.gateway.events_per_s >= TARGET_GATEWAY_EVENTS_PER_S),
            "ratio": self.ratio >= TARGET_RATIO,
            "sealing_ratio": self.sealing_ratio >= TARGET_SEALING_RATIO,
            "cpu_ms_per_referral": bool(
                profiled and profiled.profile and profiled.profile.cpu_ms_all <= TARGET_CPU_MS_PER_REFERRAL
            ),
            "oncall_p99_ms": bool(
                self.oncall and self.oncall.complete and self.oncall.every_pair.p99_ms <= TARGET_ONCALL_P99_MS
            ),
            "no_saturation_below_rate": bool(
                self.saturation and self.saturation.saturates_below(TARGET_SATURATION_RATE) is False
            ),
        }
        return found | {f"latency_at_{lat.rate:g}_per_s": self.latency_verdict(lat) for lat in self.latency}

    def to_json(self) -> bytes:
        doc = asdict(self)
        for name in ("gateway", "passthrough", "gateway_unsealed"):
            part = getattr(self, name)
            if part is not None:
                doc[name]["events_per_s"] = round(part.events_per_s, 1)
                doc[name]["cpu_us_per_event"] = round(part.cpu_us_per_event, 1)
        if self.decision is not None:
            doc["decision"] = self.decision.to_json()
        doc["ratio"] = round(self.ratio, 3)
        doc["sealing_ratio"] = round(self.sealing_ratio, 3)
        doc["targets"] = {
            "gateway_events_per_s": TARGET_GATEWAY_EVENTS_PER_S,
            "ratio": TARGET_RATIO,
            "sealing_ratio": TARGET_SEALING_RATIO,
            "cpu_ms_per_referral": TARGET_CPU_MS_PER_REFERRAL,
            "latency": f"at <= {TARGET_LOW_RATE:g}/s p50 and p99 <= {TARGET_LOW_RATE_FACTOR:g} x the floor's; "
            f"above, p99 <= {TARGET_HIGH_RATE_FACTOR:g} x the floor's p99",
            "oncall_p99_ms": TARGET_ONCALL_P99_MS,
            "no_saturation_below_rate": TARGET_SATURATION_RATE,
        }
        if self.saturation is not None:
            doc["saturation"]["threshold_ms"] = SATURATION_P99_MS
            doc["saturation"]["first_over"] = self.saturation.first_over
            doc["saturation"]["highest_within"] = self.saturation.highest_within
        doc["pass"] = self.verdicts()
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str)


def write_report(report: Report, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_bytes(report.to_json() + b"\n")
    return path


def print_report(report: Report, console: Console) -> None:
    verdicts = report.verdicts()
    table = Table(title="maillage bench")
    for column, justify in (("measure", "left"), ("value", "right"), ("target", "right"), ("", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    if report.gateway and report.passthrough:
        _throughput_rows(table, report.gateway, report.passthrough, report=report, verdicts=verdicts)
    if report.decision:
        _decision_rows(table, report.decision)
    for floor in report.floor:
        _floor_rows(table, floor)
    for lat in report.latency:
        _latency_rows(table, lat, floor=report.floor_at(lat.rate), marks=report.latency_marks(lat))
        if lat.profile is not None:
            _profile_rows(table, lat.profile, ok=verdicts["cpu_ms_per_referral"] if lat is report.profiled else None)
    if report.saturation:
        _saturation_rows(table, report.saturation, ok=verdicts["no_saturation_below_rate"])
    if report.oncall:
        _oncall_rows(table, report.oncall, ok=verdicts["oncall_p99_ms"])
    console.print(table)
    m = report.machine
    console.print(
        f"Machine: {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['cpu']}; Python {m['python']}; "
        f"Kafka {m['kafka']}; {m['platform']}; load average {m['load_before']} before, "
        f"{m.get('load_after', '?')} after"
    )


def _throughput_rows(table: Table, g: Throughput, p: Throughput, *, report: Report, verdicts: dict[str, bool]) -> None:
    table.add_row(
        f"gateway throughput, {_processes(g)}",
        f"{g.events_per_s:,.0f} events/s",
        f">= {TARGET_GATEWAY_EVENTS_PER_S:,.0f}",
        _mark(verdicts["gateway_events_per_s"]),
    )
    table.add_row("  referral.created events", f"{g.records:,} in {g.seconds:.2f} s", "", "")
    table.add_row("  CPU per event (the gateways' processes)", f"{g.cpu_us_per_event:,.0f} µs", "", "")
    if len(g.shares) > 1:
        table.add_row("  events each process decided", " / ".join(f"{n:,}" for n in g.shares), "", "")
    outcomes = ", ".join(f"{n:,} {outcome}" for outcome, n in sorted(report.gateway_outcomes.items()))
    table.add_row("  decisions recorded", outcomes, "", "")
    table.add_row("bare passthrough throughput", f"{p.events_per_s:,.0f} events/s", "", "")
    table.add_row("ratio gateway / passthrough", f"{report.ratio:.2f}", f">= {TARGET_RATIO}", _mark(verdicts["ratio"]))
    u = report.gateway_unsealed
    if u is not None:
        table.add_row(f"gateway, sealing and signing off, {_processes(u)}", f"{u.events_per_s:,.0f} events/s", "", "")
        table.add_row("  CPU per event (the gateways' processes)", f"{u.cpu_us_per_event:,.0f} µs", "", "")
        ratio, target = f"{report.sealing_ratio:.2f}", f">= {TARGET_SEALING_RATIO}"
        table.add_row("ratio sealing and signing on ÷ off", ratio, target, _mark(verdicts["sealing_ratio"]))


def _decision_rows(table: Table, d: DecisionCost) -> None:
    table.add_row(f"gateway's own CPU per event, no Kafka (batches of {d.batch})", f"{d.total_us:,.0f} µs", "", "")
    steps = f"{d.open_us:,.0f} / {d.decide_us:,.0f} / {d.seal_us:,.0f} µs"
    table.add_row("  opening / deciding / sealing and signing", steps, "", "")
    table.add_row("  of which the garbage collector", f"{d.collector_us:,.1f} µs ({d.collections} collections)", "", "")


def _processes(t: Throughput) -> str:
    return "1 process" if t.processes == 1 else f"{t.processes} processes"


def _floor_rows(table: Table, floor: Floor) -> None:
    title = f"bare floor: two Kafka hops at {floor.rate:g}/s, {floor.mode}"
    spread = f"p50 {floor.total.p50_ms:,.1f}, p99 {floor.total.p99_ms:,.1f} ms"
    table.add_row(title, spread, "", "" if floor.arrived == floor.sent else _mark(False))
    if floor.cpu_ms is not None:
        table.add_row("  CPU ms per record", _by_process(floor.cpu_ms, "{:.2f}"), "", "")
    if floor.arrived != floor.sent or floor.send_lag_max_ms > 100:
        table.add_row("  sent / arrived, source's lag", f"{floor.sent} / {floor.arrived}, {floor.send_lag_max_ms} ms")


def _latency_rows(table: Table, lat: Latency, *, floor: Floor | None, marks: tuple[bool | None, bool]) -> None:
    table.add_row(f"POST → inbox at {lat.rate:g}/s for {lat.duration:g} s", "", "", "")
    low = lat.rate <= TARGET_LOW_RATE
    if floor is None:
        p50_target = p99_target = "(no floor)"
    else:
        factor = TARGET_LOW_RATE_FACTOR if low else TARGET_HIGH_RATE_FACTOR
        p50_target = f"<= {factor:g} x {floor.total.p50_ms:,.1f} ms" if low else ""
        p99_target = f"<= {factor:g} x {floor.total.p99_ms:,.1f} ms"
    p50_ok, p99_ok = marks
    table.add_row("  p50", f"{lat.total.p50_ms:,.1f} ms", p50_target, "" if p50_ok is None else _mark(p50_ok))
    table.add_row("  p99", f"{lat.total.p99_ms:,.1f} ms", p99_target, _mark(p99_ok))
    table.add_row("  max", f"{lat.total.max_ms:,.1f} ms", "", "")
    table.add_row("  sent / accepted / arrived", f"{lat.sent} / {lat.accepted} / {lat.arrived}", "", "")
    if lat.failures:
        failed = ", ".join(f"{n} {why}" for why, n in lat.failures.items())
        table.add_row("  refused or failed", failed, "", "")
    _stage_rows(table, lat.stages)


def _stage_rows(table: Table, stages: dict[str, Spread]) -> None:
    for stage, spread in stages.items():  # each stage from the end of the one before
        table.add_row(f"  then {stage}", f"p50 {spread.p50_ms:,.0f}, p99 {spread.p99_ms:,.0f} ms", "", "")


def _saturation_rows(table: Table, sat: Saturation, *, ok: bool) -> None:
    table.add_row(f"POST → inbox, climbing until p99 exceeds {SATURATION_P99_MS:g} ms", "", "", "")
    for lat in sat.runs:
        arrived = "" if lat.complete else f", {lat.arrived} of {lat.sent} arrived"
        within = "" if Saturation.within(lat) else "over"
        spread = f"p50 {lat.total.p50_ms:,.1f}, p99 {lat.total.p99_ms:,.1f} ms{arrived}"
        table.add_row(f"  at {lat.rate:g}/s", spread, "", within)
    top = max(lat.rate for lat in sat.runs)
    first_over = f"none up to {top:g}/s" if sat.first_over is None else f"{sat.first_over:g}/s"
    target = f">= {TARGET_SATURATION_RATE:g}/s, or none"
    table.add_row(f"  first rate with p99 over {SATURATION_P99_MS:g} ms", first_over, target, _mark(ok))


def _profile_rows(table: Table, profile: Profile, *, ok: bool | None) -> None:
    mark = "" if ok is None else _mark(ok)
    table.add_row(
        "  CPU ms per referral, all services", f"{profile.cpu_ms_all:,.2f}", f"<= {TARGET_CPU_MS_PER_REFERRAL:g}", mark
    )
    table.add_row("  … by process", _by_process(profile.cpu_ms, "{:.2f}"), "", "")
    if profile.compiling_ms:
        table.add_row("  … of which JIT compiling (warm-up)", _by_process(profile.compiling_ms, "{:.2f}"), "", "")
    if profile.idle_percent:
        table.add_row("  with no referral (% of one core)", _by_process(profile.idle_percent, "{:.1f}%"), "", "")
    if profile.broker_requests is not None:
        table.add_row("  broker requests per referral", f"{profile.broker_requests_all}", "", "")
        table.add_row("  … by API", ", ".join(f"{api} {n:g}" for api, n in profile.broker_requests.items()), "", "")


def _oncall_rows(table: Table, o: Oncall, *, ok: bool) -> None:
    title = f"POST /v1/alerts → worker's socket, {o.connected} workers, {o.rate:g} alerts/s for {o.duration:g} s"
    table.add_row(title + ("" if o.ws_compression else " (no permessage-deflate)"), "", "", "")
    _delivery_rows(table, o, ok=ok)
    if o.failures:
        table.add_row("  refused or failed", ", ".join(f"{n} {why}" for why, n in o.failures.items()), "", "")
    _stage_rows(table, o.stages)
    _cost_rows(table, o)


def _delivery_rows(table: Table, o: Oncall, *, ok: bool) -> None:
    pair, first, last = o.every_pair, o.first_worker, o.last_worker
    table.add_row("  p50, every (alert, worker)", f"{pair.p50_ms:,.1f} ms", "", "")
    table.add_row(
        "  p99, every (alert, worker)", f"{pair.p99_ms:,.1f} ms", f"<= {TARGET_ONCALL_P99_MS:g} ms", _mark(ok)
    )
    table.add_row("  max, every (alert, worker)", f"{pair.max_ms:,.1f} ms", "", "")
    table.add_row("  first worker per alert", f"p50 {first.p50_ms:,.1f}, p99 {first.p99_ms:,.1f} ms", "", "")
    table.add_row("  last worker per alert", f"p50 {last.p50_ms:,.1f}, p99 {last.p99_ms:,.1f} ms", "", "")
    table.add_row("  sent / accepted / in the dispatcher", f"{o.sent} / {o.accepted} / {o.stored}", "", "")
    table.add_row("  alerts that reached every / some worker", f"{o.reached_all} / {o.reached_some}", "", "")
    missing = f"{o.pairs_missing:,} of {o.pairs_expected:,}"
    table.add_row("  (alert, worker) pairs missing", missing, "0", _mark(o.pairs_missing == 0))
    if o.connected != o.workers or o.sockets_closed:
        connected = f"{o.connected} / {o.sockets_closed}"
        table.add_row("  workers connected / sockets closed early", connected, str(o.workers), _mark(False))


def _cost_rows(table: Table, o: Oncall) -> None:
    lag = o.client_loop_lag
    table.add_row("  load generator: send lag max", f"{o.send_lag_max_ms:,.1f} ms", "", "")
    loop_lag = f"p99 {lag.p99_ms:,.1f}, max {lag.max_ms:,.1f} ms"
    table.add_row(f"  socket clients ({o.socket_processes} processes): loop lag", loop_lag, "", "")
    table.add_row("  CPU while sending (% of one core)", _by_process(o.cpu_percent, "{:.0f}%"), "", "")
    if o.broker_requests_per_alert is not None:
        requests = o.broker_requests_per_alert
        table.add_row("  broker requests per alert", f"{sum(requests.values()):,.1f}", "", "")
        table.add_row("  … by API", ", ".join(f"{api} {n:g}" for api, n in requests.items()), "", "")
    busy = (
        f"{o.machine_busy_percent:.0f}% of all cores, of which other processes {max(o.others_percent, 0):.0f}% "
        "of one core"
    )
    table.add_row("  machine busy while sending", busy, "", "")
    table.add_row("  CPU ms per alert (until all delivered)", _by_process(o.cpu_ms_per_alert, "{:.0f}"), "", "")
    table.add_row("  last POST → last alert on every socket", f"{o.drain_seconds:.2f} s", "", "")


def _by_process(figures: dict[str, float], form: str) -> str:
    """The biggest first: `name figure, name figure`."""
    ordered = sorted(figures.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{name} {form.format(value)}" for name, value in ordered)


def _mark(ok: bool) -> str:
    return "[green]PASS[/]" if ok else "[red]MISS[/]"
