"""The table a chaos run prints: one row per scenario, the figures a reader checks first in red when they fail."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from maillage.cli.chaos.checks import Figures

COLUMNS = (
    "scenario",
    "faults",
    "sent",
    "accepted",
    "503+Retry-After",
    "other answers",
    "delivered",
    "lost",
    "duplicated",
    "statuses seen by sender",
    "max delay",
    "recovery",
    "result",
)
# Wide enough for every column on one line, even where the output is a CI log rather than a terminal.
WIDTH = 180


def print_figures(figures: Sequence[Figures], console: Console, *, title: str) -> None:
    table = Table(title=title)
    for column in COLUMNS:
        left = column in ("scenario", "statuses seen by sender", "result")
        table.add_column(column, justify="left" if left else "right", no_wrap=column == "scenario")
    for f in figures:
        table.add_row(*_row(f))
    narrow, console.width = console.width, max(console.width, WIDTH)
    try:
        console.print(table)
    finally:
        console.width = narrow
    for f in figures:
        odd = {label: n for label, n in f.answers.items() if label not in ("202", "503 + Retry-After")}
        if odd:
            console.print(f"{f.scenario}: answers {', '.join(f'{n} x {label}' for label, n in odd.items())}")


def _row(f: Figures) -> list[str]:
    if not f.ran:
        return [f.scenario, *["-"] * (len(COLUMNS) - 2), f"[yellow]not run: {f.note}[/]"]
    statuses = ", ".join(f"{n:,} {state}" for state, n in sorted(f.statuses.items())) or "none"
    return [
        f.scenario,
        str(f.faults),
        f"{f.sent:,}",
        f"{f.accepted:,}",
        f"{f.refused:,}",
        _bad(f.failed),
        f"{f.delivered:,}",
        _bad(f.lost),
        _bad(f.duplicated),
        statuses if not f.missing_statuses else f"[red]{statuses} ({f.missing_statuses:,} missing)[/]",
        _seconds(f.max_delay_s),
        _seconds(f.recovery_s),
        _result(f),
    ]


def _result(f: Figures) -> str:
    if not f.holds:
        restarted = f" ({f.service_restarts} service restarts)" if f.service_restarts else ""
        return f"[red]FAILS{restarted}[/]"
    return f"[green]holds[/]{f' ({f.note})' if f.note else ''}"


def _bad(n: int) -> str:
    return f"[red]{n:,}[/]" if n else "0"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"
