"""The bench's report: its targets and verdicts, the table printed at the end, and the JSON file kept."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from maillage.cli.bench.latency import Latency
from maillage.cli.bench.oncall_figures import Oncall
from maillage.cli.bench.spread import Spread
from maillage.cli.bench.throughput import Throughput

TARGET_GATEWAY_EVENTS_PER_S = 2000.0
TARGET_RATIO = 0.3
TARGET_P99_MS = 100.0
TARGET_ONCALL_P99_MS = 250.0


@dataclass
class Report:
    started_at: str
    options: dict[str, Any]
    machine: dict[str, Any]
    gateway: Throughput | None = None
    passthrough: Throughput | None = None
    gateway_outcomes: dict[str, int] = field(default_factory=dict)
    latency: Latency | None = None
    oncall: Oncall | None = None

    @property
    def ratio(self) -> float:
        if self.gateway is None or self.passthrough is None or not self.passthrough.events_per_s:
            return 0.0
        return self.gateway.events_per_s / self.passthrough.events_per_s

    def verdicts(self) -> dict[str, bool]:
        return {
            "gateway_events_per_s": bool(self.gateway and self.gateway.events_per_s >= TARGET_GATEWAY_EVENTS_PER_S),
            "ratio": self.ratio >= TARGET_RATIO,
            "latency_p99_ms": bool(
                self.latency and self.latency.complete and self.latency.total.p99_ms <= TARGET_P99_MS
            ),
            "oncall_p99_ms": bool(
                self.oncall and self.oncall.complete and self.oncall.every_pair.p99_ms <= TARGET_ONCALL_P99_MS
            ),
        }

    def to_json(self) -> bytes:
        doc = asdict(self)
        for name in ("gateway", "passthrough"):
            part = getattr(self, name)
            if part is not None:
                doc[name]["events_per_s"] = round(part.events_per_s, 1)
        doc["ratio"] = round(self.ratio, 3)
        doc["targets"] = {
            "gateway_events_per_s": TARGET_GATEWAY_EVENTS_PER_S,
            "ratio": TARGET_RATIO,
            "latency_p99_ms": TARGET_P99_MS,
            "oncall_p99_ms": TARGET_ONCALL_P99_MS,
        }
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
    if report.latency:
        _latency_rows(table, report.latency, ok=verdicts["latency_p99_ms"])
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
        "gateway throughput",
        f"{g.events_per_s:,.0f} events/s",
        f">= {TARGET_GATEWAY_EVENTS_PER_S:,.0f}",
        _mark(verdicts["gateway_events_per_s"]),
    )
    table.add_row("  referral.created events", f"{g.records:,} in {g.seconds:.2f} s", "", "")
    outcomes = ", ".join(f"{n:,} {outcome}" for outcome, n in sorted(report.gateway_outcomes.items()))
    table.add_row("  decisions recorded", outcomes, "", "")
    table.add_row("bare passthrough throughput", f"{p.events_per_s:,.0f} events/s", "", "")
    table.add_row("ratio gateway / passthrough", f"{report.ratio:.2f}", f">= {TARGET_RATIO}", _mark(verdicts["ratio"]))


def _latency_rows(table: Table, lat: Latency, *, ok: bool) -> None:
    table.add_row(f"POST → inbox at {lat.rate:g}/s for {lat.duration:g} s", "", "", "")
    table.add_row("  p50", f"{lat.total.p50_ms:,.1f} ms", "", "")
    table.add_row("  p99", f"{lat.total.p99_ms:,.1f} ms", f"<= {TARGET_P99_MS:g} ms", _mark(ok))
    table.add_row("  max", f"{lat.total.max_ms:,.1f} ms", "", "")
    table.add_row("  sent / accepted / arrived", f"{lat.sent} / {lat.accepted} / {lat.arrived}", "", "")
    if lat.failures:
        failed = ", ".join(f"{n} {why}" for why, n in lat.failures.items())
        table.add_row("  refused or failed", failed, "", "")
    _stage_rows(table, lat.stages)


def _stage_rows(table: Table, stages: dict[str, Spread]) -> None:
    for stage, spread in stages.items():  # each stage from the end of the one before
        table.add_row(f"  then {stage}", f"p50 {spread.p50_ms:,.0f}, p99 {spread.p99_ms:,.0f} ms", "", "")


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
