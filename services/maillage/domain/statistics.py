"""Figures for public policy: counts per Pôle and quarter from the audit's metadata, with disclosure control.

A published table must not let anyone learn that one, two or three identifiable people were referred, declined
or alerted about in a sector of a Pôle: every count below the threshold is suppressed (primary suppression), and
then every further cell or margin from which a suppressed count could be worked out (complementary suppression),
until no suppressed value follows from the published ones by the table's sums. Zero is published: it counts
nobody. Each table is protected on its own, and no table's margin is another table's cell.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from statistics import median, quantiles

from maillage.domain.events import AlertKind, ConferencePurpose, DeclineReason, EventType, ReferralDecision
from maillage.domain.vocabulary import LegalBasis, Sector, Severity

DEFAULT_THRESHOLD = 5
QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
UNKNOWN = "unknown"  # a Pôle or sector the records do not tell (an agency that left the network)

REFERRAL = EventType.REFERRAL_CREATED.value
RESPONSE = EventType.REFERRAL_RESPONDED.value
ALERT = EventType.ALERT_RAISED.value
CONSULTATION = EventType.CONSULTATION_REQUESTED.value
CONFERENCE = EventType.CASE_CONFERENCE_CONVENED.value
DISCLOSED = frozenset({"delivered", "filtered"})  # what reached a recipient (domain/disclosure.py outcomes)


# --- quarters -----------------------------------------------------------------------------------


def quarter_of(at: datetime) -> str:
    at = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    return f"{at.year}-Q{(at.month - 1) // 3 + 1}"


def last_closed_quarter(at: datetime) -> str:
    """The last quarter that has ended at `at`: the latest whose figures no longer change."""
    start, _ = quarter_bounds(quarter_of(at))
    return quarter_of(start - timedelta(microseconds=1))


def quarter_bounds(quarter: str) -> tuple[datetime, datetime]:
    """The first instant of the quarter and the first of the next one (UTC)."""
    match = QUARTER.match(quarter)
    if match is None:
        raise ValueError(f"{quarter!r} is no quarter: write it 2026-Q4")
    year, q = int(match[1]), int(match[2])
    start = datetime(year, 3 * q - 2, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC) if q == 4 else datetime(year, 3 * q + 1, 1, tzinfo=UTC)
    return start, end


# --- what the figures are made from -------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Decided:
    """One audit record as the figures read it: vocabulary values only. `event_id` and `recipient` tell
    records apart when counting; they are never published."""

    pole: str
    quarter: str
    event_id: str
    event_type: str
    recipient: str
    sender_sector: str
    recipient_sector: str
    legal_basis: str
    outcome: str
    severity: str | None = None
    kind: str | None = None
    referral_decision: str | None = None
    decline_reason: str | None = None
    conference_purpose: str | None = None


@dataclass(frozen=True, kw_only=True)
class Acknowledged:
    """An alert acknowledged at one agency, and after how long."""

    pole: str
    quarter: str
    severity: str
    seconds: float


# --- tables and their protection ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Table:
    """Counts by two vocabularies, with their row and column totals."""

    name: str
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    cells: tuple[tuple[int, ...], ...]

    @property
    def row_totals(self) -> tuple[int, ...]:
        return tuple(sum(row) for row in self.cells)

    @property
    def column_totals(self) -> tuple[int, ...]:
        return tuple(sum(row[j] for row in self.cells) for j in range(len(self.columns)))


@dataclass(frozen=True, kw_only=True)
class Published:
    """A table as it may be published: None where a count is suppressed."""

    name: str
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    cells: tuple[tuple[int | None, ...], ...]
    row_totals: tuple[int | None, ...]
    column_totals: tuple[int | None, ...]
    total: int | None


def count_table(
    name: str, keys: Iterable[tuple[str, str]], *, rows: Sequence[str] = (), columns: Sequence[str] = ()
) -> Table:
    """Count (row, column) pairs; rows and columns in the vocabulary's order, then any other value seen."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for key in keys:
        counts[key] += 1
    row_labels = _ordered({r for r, _ in counts}, rows)
    column_labels = _ordered({c for _, c in counts}, columns)
    cells = tuple(tuple(counts.get((r, c), 0) for c in column_labels) for r in row_labels)
    return Table(name=name, rows=row_labels, columns=column_labels, cells=cells)


def _ordered(seen: set[str], order: Sequence[str]) -> tuple[str, ...]:
    return tuple([v for v in order if v in seen] + sorted(seen - set(order)))


def protect(table: Table, *, threshold: int = DEFAULT_THRESHOLD) -> Published:
    """The table with every count in 1..threshold-1 suppressed, and as many other cells or margins as it
    takes for none of them to follow from what is published."""
    grid = _Grid(table)
    hidden = {k for k, v in enumerate(grid.values) if 0 < v < threshold}
    while True:
        # First the plain case (a row or column, or the margins, with one suppressed value: its sum gives it
        # back), then whatever the sums still give away together.
        exposed = grid.alone(hidden)
        if exposed is None:
            exposed = grid.first_determined(hidden)
        if exposed is None:
            return grid.published(hidden)
        hidden.add(grid.complement(exposed, hidden))


class _Grid:
    """A table's cells and margins as one vector, and the sums that tie them: each row's cells add up to its
    total, each column's to its own, and both sets of totals to the grand total."""

    def __init__(self, table: Table) -> None:
        self.table = table
        n, m = len(table.rows), len(table.columns)
        self.n, self.m = n, m
        cells = [v for row in table.cells for v in row]
        self.values = [*cells, *table.row_totals, *table.column_totals, sum(cells)]
        grand = n * m + n + m
        self.sums: list[tuple[list[int], int]] = [([i * m + j for j in range(m)], n * m + i) for i in range(n)]
        self.sums += [([i * m + j for i in range(n)], n * m + n + j) for j in range(m)]
        self.sums += [([n * m + i for i in range(n)], grand), ([n * m + n + j for j in range(m)], grand)]

    def alone(self, hidden: set[int]) -> int | None:
        for members, total in self.sums:
            suppressed = [k for k in (*members, total) if k in hidden]
            if len(suppressed) == 1:
                return suppressed[0]
        return None

    def first_determined(self, hidden: set[int]) -> int | None:
        """A suppressed value that the published values and the sums determine, if any: one whose unit
        vector lies in the row space of the sums restricted to the suppressed values."""
        unknowns = sorted(hidden)
        column = {k: x for x, k in enumerate(unknowns)}
        matrix = []
        for members, total in self.sums:
            row = [Fraction(0)] * len(unknowns)
            for k, coefficient in [(k, 1) for k in members] + [(total, -1)]:
                if k in column:
                    row[column[k]] += coefficient
            if any(row):
                matrix.append(row)
        for pivot_column, row in _reduced(matrix, width=len(unknowns)):
            if sum(1 for x in row if x) == 1:
                return unknowns[pivot_column]
        return None

    def complement(self, exposed: int, hidden: set[int]) -> int:
        """The value to suppress next: in the sum with the fewest suppressed values that holds `exposed`, its
        smallest non-zero cell, else its smallest total, else a zero cell (a suppressed zero still tells that
        the others add up to the total)."""
        sums = [[*members, total] for members, total in self.sums]
        # Every sum holding it may be suppressed whole and still give it away through the others: then the
        # sums that touch a suppressed value, fewest suppressed first.
        for ring in ([s for s in sums if exposed in s], [s for s in sums if hidden.intersection(s)]):
            for items in sorted(ring, key=lambda items: sum(1 for k in items if k in hidden)):
                free = [k for k in items if k not in hidden]
                if free:
                    return min(free, key=self._cost)
        return min((k for k in range(len(self.values)) if k not in hidden), key=self._cost)

    def _cost(self, k: int) -> tuple[int, int]:
        is_cell = k < self.n * self.m
        value = self.values[k]
        return (0 if is_cell and value > 0 else 1 if not is_cell else 2), value

    def published(self, hidden: set[int]) -> Published:
        n, m, t = self.n, self.m, self.table
        shown = [None if k in hidden else v for k, v in enumerate(self.values)]
        return Published(
            name=t.name,
            rows=t.rows,
            columns=t.columns,
            cells=tuple(tuple(shown[i * m + j] for j in range(m)) for i in range(n)),
            row_totals=tuple(shown[n * m : n * m + n]),
            column_totals=tuple(shown[n * m + n : n * m + n + m]),
            total=shown[-1],
        )


def _reduced(matrix: list[list[Fraction]], *, width: int) -> list[tuple[int, list[Fraction]]]:
    """The reduced row echelon form of `matrix`: each non-zero row with its pivot's column."""
    rows = [list(r) for r in matrix]
    pivots: list[tuple[int, list[Fraction]]] = []
    top = 0
    for col in range(width):
        found = next((r for r in range(top, len(rows)) if rows[r][col]), None)
        if found is None:
            continue
        rows[top], rows[found] = rows[found], rows[top]
        pivot = rows[top]
        pivot[:] = [x / pivot[col] for x in pivot]
        for r, row in enumerate(rows):
            if r != top and row[col]:
                factor = row[col]
                row[:] = [a - factor * b for a, b in zip(row, pivot, strict=True)]
        top += 1
    for r in range(top):
        col = next(c for c, x in enumerate(rows[r]) if x)
        pivots.append((col, rows[r]))
    return pivots


# --- the figures of one Pôle and quarter -------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Timing:
    """Time to acknowledge alerts of one severity: withheld for fewer acknowledgements than the threshold."""

    severity: str
    acknowledged: int | None
    median_seconds: float | None
    p90_seconds: float | None


@dataclass(frozen=True, kw_only=True)
class Figures:
    pole: str
    quarter: str
    threshold: int
    tables: tuple[Published, ...]
    acknowledgement: tuple[Timing, ...]


@dataclass(frozen=True, kw_only=True)
class Vocabulary:
    """The orders rows and columns are shown in (the domain's vocabularies)."""

    sectors: Sequence[str] = ()
    severities: Sequence[str] = ()
    kinds: Sequence[str] = ()
    outcomes: Sequence[str] = ()
    bases: Sequence[str] = ()
    purposes: Sequence[str] = ()


DECLINED = ReferralDecision.DECLINED.value
VOCABULARY = Vocabulary(
    sectors=[v.value for v in Sector],
    severities=[v.value for v in Severity],
    kinds=[v.value for v in AlertKind],
    outcomes=[
        *(d.value for d in ReferralDecision if d is not ReferralDecision.DECLINED),
        *(f"{DECLINED}:{r.value}" for r in DeclineReason),
        f"{DECLINED}:unstated",
    ],
    bases=[v.value for v in LegalBasis],
    purposes=[v.value for v in ConferencePurpose],
)
TABLES = ("referrals", "referral_outcomes", "alerts", "legal_bases", "consultations", "case_conferences")


def figures(
    decided: Iterable[Decided],
    acknowledged: Iterable[Acknowledged],
    *,
    threshold: int = DEFAULT_THRESHOLD,
    vocabulary: Vocabulary | None = None,
) -> list[Figures]:
    """Every Pôle and quarter the records tell of, each with its protected tables."""
    if threshold < 2:
        raise ValueError("a threshold below 2 would publish single persons")
    v = vocabulary or VOCABULARY
    by_group: dict[tuple[str, str], list[Decided]] = defaultdict(list)
    for d in decided:
        by_group[(d.pole, d.quarter)].append(d)
    timings: dict[tuple[str, str], list[Acknowledged]] = defaultdict(list)
    for a in acknowledged:
        timings[(a.pole, a.quarter)].append(a)
    return [
        Figures(
            pole=pole,
            quarter=quarter,
            threshold=threshold,
            tables=tuple(protect(t, threshold=threshold) for t in _tables(by_group[(pole, quarter)], v)),
            acknowledgement=_timings(timings[(pole, quarter)], threshold=threshold, order=v.severities),
        )
        for pole, quarter in sorted({*by_group, *timings})
    ]


def _tables(records: list[Decided], v: Vocabulary) -> list[Table]:
    # What went to a recipient: not a denial, nor a notice, a receipt, a report or a request recorded.
    disclosed = [d for d in records if d.outcome in DISCLOSED and d.recipient_sector != "gateway"]

    def of(event_type: str, source: list[Decided] = disclosed) -> list[Decided]:
        return [d for d in source if d.event_type == event_type]

    return [
        # Each referral as each recipient received it.
        count_table(
            "referrals",
            _once(
                of(REFERRAL),
                by=lambda d: (d.event_id, d.recipient),
                key=lambda d: (d.sender_sector, d.recipient_sector),
            ),
            rows=v.sectors,
            columns=v.sectors,
        ),
        # The answer's sender is the referral's recipient; a decline's reason is part of its outcome, so that
        # no other table's margin is "declined".
        count_table(
            "referral_outcomes",
            _once(of(RESPONSE), by=lambda d: d.event_id, key=lambda d: (d.sender_sector, _outcome(d))),
            rows=v.sectors,
            columns=v.outcomes,
        ),
        # An alert is counted once, whoever it went to (or none, when every recipient was refused).
        count_table(
            "alerts",
            _once(
                of(ALERT, records), by=lambda d: d.event_id, key=lambda d: (d.severity or UNKNOWN, d.kind or UNKNOWN)
            ),
            rows=v.severities,
            columns=v.kinds,
        ),
        count_table(
            "legal_bases",
            _once(disclosed, by=lambda d: (d.event_id, d.recipient), key=lambda d: (d.legal_basis, d.recipient_sector)),
            rows=v.bases,
            columns=v.sectors,
        ),
        count_table(
            "consultations",
            _once(of(CONSULTATION, records), by=lambda d: d.event_id, key=lambda d: (d.sender_sector, "requested")),
            rows=v.sectors,
        ),
        count_table(
            "case_conferences",
            _once(
                of(CONFERENCE, records),
                by=lambda d: d.event_id,
                key=lambda d: (d.sender_sector, d.conference_purpose or UNKNOWN),
            ),
            rows=v.sectors,
            columns=v.purposes,
        ),
    ]


def _outcome(d: Decided) -> str:
    decision = d.referral_decision or UNKNOWN
    return f"{DECLINED}:{d.decline_reason or 'unstated'}" if decision == DECLINED else decision


def _once(
    records: Iterable[Decided], *, by: Callable[[Decided], Hashable], key: Callable[[Decided], tuple[str, str]]
) -> list[tuple[str, str]]:
    """One key per counted unit (an event, or an event at one recipient), however many records it has."""
    seen: dict[Hashable, tuple[str, str]] = {}
    for d in records:
        seen.setdefault(by(d), key(d))
    return list(seen.values())


def _timings(rows: list[Acknowledged], *, threshold: int, order: Sequence[str]) -> tuple[Timing, ...]:
    by_severity: dict[str, list[float]] = defaultdict(list)
    for a in rows:
        by_severity[a.severity].append(a.seconds)
    return tuple(_timing(s, by_severity[s], threshold=threshold) for s in _ordered(set(by_severity), order))


def _timing(severity: str, seconds: list[float], *, threshold: int) -> Timing:
    # A median of three acknowledgements is nearly one worker's shift: below the threshold, nothing shows.
    if len(seconds) < threshold:
        return Timing(severity=severity, acknowledged=None, median_seconds=None, p90_seconds=None)
    p90 = quantiles(seconds, n=10, method="inclusive")[-1]
    return Timing(
        severity=severity,
        acknowledged=len(seconds),
        median_seconds=round(median(seconds), 1),
        p90_seconds=round(p90, 1),
    )
