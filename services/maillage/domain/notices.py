"""Notices to the past recipients of given events: who they are (from the audit chain), and their receipts.

A withdrawal of consent, and later a rejected danger disclosure or an erasure, must reach every agency that
received data about the person under it. Who received what is read from the gateway's own audit records,
never from the senders: metadata only, the same for every kind of notice.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from maillage.domain.disclosure import Outcome
from maillage.domain.events import EventType, Holder, NoticeKind
from maillage.domain.policy import Policy
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
    holder: Holder = Holder.AGENCY
    misrouted: tuple[str, ...] = ()  # after a role correction: events the right role would not have allowed
    disallowed: frozenset[Category] = frozenset()  # and the categories in them it would not have allowed


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


def holders(
    records: Iterable[Mapping[str, Any]], *, sectors: Mapping[str, Sector], dispatched: Collection[str]
) -> list[PastRecipient]:
    """Everyone who holds something about a person, from the audit records about them (in chain order):
    each agency that received data about them or sent an event about them (its own files); and the
    dispatcher, for each agency it serves that received an alert about them. An agency no longer in the
    network (`sectors`) cannot be reached: the audit keeps it."""
    received = {r.agency_id: r for r in past_recipients(records)}
    found: dict[tuple[str, Holder], PastRecipient] = {}
    for record in records:
        for agency_id in (str(record.get("source") or ""), str(record.get("recipient") or "")):
            if agency_id not in sectors or (agency_id, Holder.AGENCY) in found:
                continue
            if agency_id == record.get("recipient") and agency_id not in received:
                continue  # told of a denial, a notice or a receipt only: nothing of the person's data
            found[agency_id, Holder.AGENCY] = received.get(agency_id) or PastRecipient(
                agency_id=agency_id,
                sector=sectors[agency_id],
                role=Role(record["subject_role"]),
                events=(),
                categories=frozenset(),
            )
    for agency_id, recipient in received.items():
        alerts = _alerts_received(records, agency_id)
        if agency_id in dispatched and agency_id in sectors and alerts:
            found[agency_id, Holder.DISPATCHER] = replace(recipient, events=alerts, holder=Holder.DISPATCHER)
    return list(found.values())


def _alerts_received(records: Iterable[Mapping[str, Any]], agency_id: str) -> tuple[str, ...]:
    return tuple(
        dict.fromkeys(
            str(r["event_id"])
            for r in records
            if r.get("recipient") == agency_id
            and r.get("event_type") == EventType.ALERT_RAISED.value
            and r.get("outcome") in _DISCLOSED
        )
    )


def misrouted(records: Iterable[Mapping[str, Any]], *, role: Role, policy: Policy) -> list[PastRecipient]:
    """After a person's role is corrected to `role`: each agency that received data about them under another
    role, with the events it received so, and among those the events (and categories) that the right role's
    ceiling would not have allowed its sector — what it should erase."""
    wrong = [r for r in records if r.get("outcome") in _DISCLOSED and r.get("subject_role") != role.value]
    corrected: list[PastRecipient] = []
    for recipient in past_recipients(wrong):
        allowed = policy.ceiling(recipient.sector, role)
        flagged: dict[str, None] = {}
        disallowed: set[Category] = set()
        for record in wrong:
            if record["recipient"] != recipient.agency_id:
                continue
            beyond = {Category(c) for c in record.get("delivered") or ()} - allowed
            if beyond:
                flagged[str(record["event_id"])] = None
                disallowed |= beyond
        corrected.append(replace(recipient, misrouted=tuple(flagged), disallowed=frozenset(disallowed)))
    return corrected


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
    holder: Holder = Holder.AGENCY
    misrouted: list[str] = []
    disallowed: list[Category] = []
