"""Art. 458bis reviews at the gateway: a raising agency's decision on an alert's danger disclosures, checked
against the audit chain and recorded in it. The gateway keeps nothing else of it: no justification, no payload."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.audit import repository as audit
from maillage.core.crypto.trust import Refused
from maillage.core.messaging.envelope import Envelope
from maillage.domain.audit import review_record
from maillage.domain.events import DisclosureReviewed
from maillage.domain.review import may_review


@dataclass(frozen=True)
class Review:
    """A decision the gateway accepted: its audit record's content. A rejection's erase notices find who
    received the alert in the audit records themselves (gateway/notices.py)."""

    alert_id: str
    record: dict[str, Any]


async def accept(
    session: AsyncSession,
    envelope: Envelope,
    payload: DisclosureReviewed,
    *,
    unsaved: Sequence[Mapping[str, Any]],
    policy_sha256: str,
    recorded_at: str,
) -> Review:
    """The decision, once it is shown to be about a danger alert its sender raised, decided once, by a second
    professional; else Refused. `unsaved`: this batch's audit records, not in the database yet."""
    alert_id = str(payload.alert_id)
    rows = [*await audit.of_event(session, alert_id), *(r for r in unsaved if r["event_id"] == alert_id)]
    if not rows or (rows[0]["source"], rows[0]["subject_ref"]) != (envelope.agency_id, envelope.subject):
        raise Refused("unknown_alert", "no alert with this id was decided for this agency and subject")
    danger = [r for r in rows if r["review"]]
    if not danger:
        raise Refused("not_reviewable", "the alert disclosed nothing under danger")
    raised_by = danger[0].get("raised_by")
    if not may_review(
        reviewer=payload.reviewer,
        reviewer_agency=envelope.agency_id,
        raised_by=raised_by,
        raising_agency=rows[0]["source"],
    ):
        raise Refused("self_review", "the reviewer is not shown to be a second professional of the raising agency")
    if await audit.reviewed(session, alert_id) or any(r.get("alert_id") == alert_id for r in unsaved):
        raise Refused("already_reviewed", "a decision on this alert is recorded already")
    record = review_record(
        event_id=envelope.id,
        event_type=envelope.type.value,
        source=envelope.agency_id,
        subject_ref=envelope.subject,
        subject_role=envelope.subjectrole,
        alert_id=alert_id,
        decision=payload.decision.value,
        reviewer=payload.reviewer,
        policy_sha256=policy_sha256,
        recorded_at=recorded_at,
    )
    return Review(alert_id=alert_id, record=record)
