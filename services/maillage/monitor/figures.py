"""The Pôles' figures as a CSV file, and their words from the `stats` message catalogs.

The CSV holds the vocabularies' codes (stable, for whoever reuses the figures) under headers in the reader's
language; a withheld figure is an empty value marked as withheld, never a number.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

from maillage.core.i18n import LANGUAGES, catalog, translate
from maillage.monitor import contracts as c

DOMAIN = "stats"
TOTAL = "total"
COLUMNS = ("pole", "quarter", "table", "row", "column", "value", "withheld")
TIMING = "time_to_acknowledge"


def labels(language: str) -> dict[str, str]:
    """Every word of the figures' page in `language`, English where its catalog lacks one."""
    return {**catalog("en", DOMAIN), **catalog(language if language in LANGUAGES else "en", DOMAIN)}


def as_csv(stats: c.Stats, *, language: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
    writer.writerow([translate(language, f"csv.{name}", domain=DOMAIN) for name in COLUMNS])
    for pole in stats.poles:
        for table, row, column, value in _lines(pole):
            writer.writerow([pole.pole, pole.quarter, table, row, column, "" if value is None else value, _mark(value)])
    return out.getvalue()


def filename(stats: c.Stats, *, pole: str | None) -> str:
    # The Pôle is the caller's text: only letters, digits and dashes reach the header.
    suffix = "-" + re.sub(r"[^A-Za-z0-9-]", "_", pole) if pole else ""
    return f"maillage-stats-{stats.quarter}{suffix}.csv"


def _mark(value: float | None) -> str:
    return "1" if value is None else "0"


def _lines(pole: c.PoleStats) -> Iterator[tuple[str, str, str, float | None]]:
    for t in pole.tables:
        for row, cells, row_total in zip(t.rows, t.cells, t.row_totals, strict=True):
            for column, value in zip(t.columns, cells, strict=True):
                yield t.name, row, column, value
            yield t.name, row, TOTAL, row_total
        for column, column_total in zip(t.columns, t.column_totals, strict=True):
            yield t.name, TOTAL, column, column_total
        yield t.name, TOTAL, TOTAL, t.total
    for timing in pole.acknowledgement:
        yield TIMING, timing.severity, "acknowledged", timing.acknowledged
        yield TIMING, timing.severity, "median_seconds", timing.median_seconds
        yield TIMING, timing.severity, "p90_seconds", timing.p90_seconds
