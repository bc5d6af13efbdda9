"""Notices to the past recipients of given events: who they are (from the audit chain), and their receipts.

A withdrawal of consent, and later a rejected danger disclosure or an erasure, must reach every agency that
received data about the person under it. Who received what is read from the gateway's own audit records,
never from the senders: metadata only, the same for every kind of notice.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from maillage.domain.disclosure import Outcome
from maillage.domain.events import NoticeKind
from maillage.domain.vocabulary import Category, Role, Sector

NOTIFIED = "notified"  # the outcome of a notice's audit record: no data went, a notice did
ACKNOWLEDGED = "acknowledged"  # the outcome of its receipt's
_DISCLOSED = (Outcome.DELIVERED.value, Outcome.FILTERED.value)


@dataclass(frozen=True)
class PastRecipient:
    """An agency that received data about a person: in which events, which categories, about whom in what role."""

    agency_id: str
    sector: Sector
    role: Role
    events: tuple[str, ...]
    categories: frozenset[Category]
    consents: frozenset[str] = frozenset()


def past_recipients(
    records: Iterable[Mapping[str, Any]],
    *,
    consent_id: str | None = None,
    event_ids: Collection[str] | None = None,
) -> list[PastRecipient]:
    """The recipients of the disclosures among `records` (audit records, in chain order) that rested on
    `consent_id`, or that were of one of `event_ids`; by agency, in the order they first received."""
    found: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        if record.get("outcome") not in _DISCLOSED:
            continue  # a denial, a notice or a receipt: no data went
        if consent_id is not None and consent_id not in (record.get("consents") or ()):
            continue
        if event_ids is not None and record.get("event_id") not in event_ids:
            continue
        found.setdefault(str(record["recipient"]), []).append(record)
    return [_recipient(agency_id, received) for agency_id, received in found.items()]


def _recipient(agency_id: str, received: list[Mapping[str, Any]]) -> PastRecipient:
    events = tuple(dict.fromkeys(str(r["event_id"]) for r in received))
    last = received[-1]
    return PastRecipient(
        agency_id=agency_id,
        sector=Sector(last["sector"]),
        role=Role(last["subject_role"]),
        events=events,
        categories=frozenset(Category(c) for r in received for c in r.get("delivered") or ()),
        consents=frozenset(c for r in received for c in r.get("consents") or ()),
    )


class NoticeLine(BaseModel):
    """What became of one notice, as its originator is told on its status topic (metadata only)."""

    model_config = ConfigDict(frozen=True)

    notice_id: str
    recipient: str
    kind: NoticeKind
    state: str  # delivered (the gateway published it to the recipient) | acknowledged (its service stored it)
    events: list[str] = []
    categories: list[Category] = []
    erase: bool = False
    at: datetime
    erased: int | None = None
