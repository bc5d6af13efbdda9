"""Figures for public policy: no count below the threshold, and none that the published sums give away."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maillage.domain.statistics import (
    Acknowledged,
    Decided,
    Published,
    Table,
    figures,
    protect,
    quarter_bounds,
    quarter_of,
)

pytestmark = pytest.mark.unit


def table_of(cells: list[list[int]]) -> Table:
    return Table(
        name="t",
        rows=tuple(f"r{i}" for i in range(len(cells))),
        columns=tuple(f"c{j}" for j in range(len(cells[0]))),
        cells=tuple(tuple(row) for row in cells),
    )


tables = st.integers(1, 5).flatmap(
    lambda n: st.integers(1, 5).flatmap(
        lambda m: st.lists(
            st.lists(st.one_of(st.integers(0, 4), st.integers(0, 30)), min_size=m, max_size=m), min_size=n, max_size=n
        )
    )
)


def _flat(p: Published) -> list[int | None]:
    return [*(v for row in p.cells for v in row), *p.row_totals, *p.column_totals, p.total]


def _sums(n: int, m: int) -> list[dict[int, int]]:
    """Each sum of the table as coefficients over the flat vector (cells, row totals, column totals, total)."""
    grand = n * m + n + m
    sums = [{**{i * m + j: 1 for j in range(m)}, n * m + i: -1} for i in range(n)]
    sums += [{**{i * m + j: 1 for i in range(n)}, n * m + n + j: -1} for j in range(m)]
    sums += [{**{n * m + i: 1 for i in range(n)}, grand: -1}, {**{n * m + n + j: 1 for j in range(m)}, grand: -1}]
    return sums


def _rank(matrix: list[list[Fraction]]) -> int:
    rows, rank = [list(r) for r in matrix], 0
    for col in range(len(rows[0]) if rows else 0):
        pivot = next((r for r in range(rank, len(rows)) if rows[r][col]), None)
        if pivot is None:
            continue
        rows[rank], rows[pivot] = rows[pivot], rows[rank]
        for r in range(rank + 1, len(rows)):
            factor = rows[r][col] / rows[rank][col]
            rows[r] = [a - factor * b for a, b in zip(rows[r], rows[rank], strict=True)]
        rank += 1
    return rank


def derivable(p: Published) -> list[int]:
    """The suppressed values the published ones determine: those whose column of the sums (over the suppressed
    values) is not in the span of the others' — dropping it lowers the rank."""
    flat = _flat(p)
    hidden = [k for k, v in enumerate(flat) if v is None]
    matrix = [[Fraction(s.get(k, 0)) for k in hidden] for s in _sums(len(p.rows), len(p.columns))]
    full = _rank(matrix)
    return [k for x, k in enumerate(hidden) if _rank([row[:x] + row[x + 1 :] for row in matrix]) < full]


@settings(max_examples=300, deadline=None)
@given(cells=tables, threshold=st.integers(2, 6))
def test_no_published_count_is_small_and_no_suppressed_count_follows_from_the_sums(
    cells: list[list[int]], threshold: int
) -> None:
    table = table_of(cells)
    published = protect(table, threshold=threshold)
    truth = [*(v for row in cells for v in row), *table.row_totals, *table.column_totals, sum(map(sum, cells))]
    for shown, true in zip(_flat(published), truth, strict=True):
        assert shown is None or shown == true
        assert shown is None or not 0 < shown < threshold
    # No row or column with exactly one suppressed value among its cells and its total.
    for s in _sums(len(cells), len(cells[0])):
        assert sum(1 for k in s if _flat(published)[k] is None) != 1
    assert derivable(published) == []


def test_a_small_cell_alone_in_its_row_takes_its_rows_next_smallest_cell_with_it() -> None:
    published = protect(table_of([[3, 10, 20], [12, 14, 30], [9, 11, 40]]))
    assert published.cells[0][0] is None and published.cells[0][1] is None
    assert published.cells[0][2] == 20 and published.row_totals[0] == 33
    # Its column must hide a second value too, or the column total would give the 3 back.
    assert sum(1 for row in published.cells if row[0] is None) >= 2 or published.column_totals[0] is None
    assert derivable(published) == []


def test_a_table_with_nothing_small_is_published_whole() -> None:
    published = protect(table_of([[5, 0], [7, 9]]))
    assert published.cells == ((5, 0), (7, 9)) and published.total == 21


def test_a_small_grand_total_is_suppressed_with_what_gives_it_away() -> None:
    published = protect(table_of([[1, 0], [0, 2]]))
    assert published.total is None and all(v in (None, 0) for row in published.cells for v in row)
    assert derivable(published) == []


def at(month: int) -> datetime:
    return datetime(2026, month, 15, tzinfo=UTC)


def decided(n: int, **fields: str) -> list[Decided]:
    base = {
        "pole": "liege",
        "quarter": "2026-Q4",
        "event_type": "maillage.referral.created.v1",
        "recipient": "cpas-seraing",
        "sender_sector": "victim_support",
        "recipient_sector": "social",
        "legal_basis": "consent",
        "outcome": "delivered",
    }
    return [Decided(**{**base, "event_id": f"{fields.get('event_type', 'e')}-{i}", **fields}) for i in range(n)]


def test_figures_count_referrals_outcomes_and_alerts_per_pole_and_quarter() -> None:
    records = [
        *decided(6),
        *decided(2, recipient_sector="housing", recipient="logement-liege", event_type="x.referral"),
        *decided(
            7,
            event_type="maillage.referral.responded.v1",
            sender_sector="social",
            recipient_sector="victim_support",
            referral_decision="declined",
            decline_reason="no_capacity",
        ),
        *decided(8, event_type="maillage.alert.raised.v1", severity="imminent", kind="weapon", outcome="denied"),
        *decided(3, pole="namur"),
    ]
    acks = [Acknowledged(pole="liege", quarter="2026-Q4", severity="imminent", seconds=s) for s in range(10, 80, 10)]
    liege, namur = figures(records, acks)
    tables = {t.name: t for t in liege.tables}
    assert tables["referrals"].cells == ((6,),)
    assert tables["referral_outcomes"].columns == ("declined:no_capacity",)
    assert tables["referral_outcomes"].cells == ((7,),)
    assert tables["alerts"].cells == ((8,),)  # counted though every recipient was refused
    [imminent] = liege.acknowledgement
    assert (imminent.acknowledged, imminent.median_seconds) == (7, 40.0)
    assert {t.name: t.total for t in namur.tables}["referrals"] is None  # three referrals: suppressed


def test_time_to_acknowledge_is_withheld_below_the_threshold() -> None:
    acks = [Acknowledged(pole="liege", quarter="2026-Q4", severity="high", seconds=s) for s in (10, 20, 30, 40)]
    [only] = figures([], acks)
    assert only.acknowledgement[0].median_seconds is None and only.acknowledgement[0].acknowledged is None


def test_quarters() -> None:
    assert quarter_of(at(10)) == "2026-Q4" and quarter_of(at(3)) == "2026-Q1"
    assert quarter_bounds("2026-Q4") == (datetime(2026, 10, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="quarter"):
        quarter_bounds("2026-Q5")
