"""The person's disclosure report: who may ask for it, which holds postpone it, and its lines, read from the
audit chain's records (metadata only: who received which kinds of information about the person, when, on
which legal basis — never a value).

The network-wide view of a person exists only as this report, handed to the person through an agency that
holds them; each agency's own listing stays its own (gateway/services.py `disclosures_about`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from maillage.domain.disclosure import Outcome
from maillage.domain.events import MAX_HOLD_DAYS, HoldReason
from maillage.domain.vocabulary import Category, LegalBasis

_DISCLOSED = (Outcome.DELIVERED.value, Outcome.FILTERED.value)
MAX_HOLD = timedelta(days=MAX_HOLD_DAYS)


@dataclass(frozen=True)
class Hold:
    """A hold on the person's report, placed by an agency that holds them, until a date."""

    hold_id: str
    agency_id: str
    until: datetime
    reason: HoldReason


@dataclass(frozen=True)
class ReportLine:
    """One disclosure as the person reads it: from which agency to which, when, which kinds, on which basis."""

    at: datetime
    event_type: str
    sender: str
    recipient: str
    sector: str
    categories: tuple[Category, ...]
    basis: LegalBasis
    legal_reference: str | None = None


def _disclosed(record: Mapping[str, Any]) -> bool:
    return record.get("outcome") in _DISCLOSED


def holds_person(records: Iterable[Mapping[str, Any]], *, agency_id: str) -> bool:
    """Whether `agency_id` holds data about the person: it disclosed something about them, or received
    something. Only such an agency may ask for their report or hold it back: to any other, asking would
    itself reveal that the person is known to the network."""
    return any(_disclosed(r) and agency_id in (r.get("source"), r.get("recipient")) for r in records)


def hold_refusal(*, placed_at: datetime, until: datetime) -> str | None:
    """Why a hold's end is not acceptable, or None. A hold postpones the person's right of access and must
    stay limited in time (GDPR art. 23(2)(g)): a new hold may follow, each one documented."""
    if until <= placed_at:
        return "a hold must end after it is placed"
    if until - placed_at > MAX_HOLD:
        return f"a hold lasts at most {MAX_HOLD_DAYS} days"
    return None


def active_holds(holds: Iterable[Hold], *, at: datetime) -> list[Hold]:
    """The holds still running at `at`, the one ending last first."""
    return sorted((h for h in holds if h.until > at), key=lambda h: h.until, reverse=True)


def report_lines(records: Iterable[Mapping[str, Any]], *, until: str | None = None) -> list[ReportLine]:
    """Every disclosure about the person among `records` (audit records, in chain order), oldest first; with
    `until` (an ISO 8601 time as records hold it), only those recorded by then. Denials, notices, receipts
    and reviews are left out: nothing about the person went in them."""
    lines = [_line(r) for r in records if _disclosed(r) and (until is None or str(r["recorded_at"]) <= until)]
    return sorted(lines, key=lambda line: line.at)


def _line(record: Mapping[str, Any]) -> ReportLine:
    return ReportLine(
        at=datetime.fromisoformat(str(record["recorded_at"])),
        event_type=str(record["event_type"]),
        sender=str(record["source"]),
        recipient=str(record["recipient"]),
        sector=str(record["sector"]),
        categories=tuple(c for c in Category if c.value in (record.get("delivered") or ())),  # in the usual order
        basis=LegalBasis(record["legal_basis"]),
        legal_reference=record.get("legal_reference"),
    )
