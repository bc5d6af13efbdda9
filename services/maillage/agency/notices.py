"""Notices at an agency: heeding one received (erase if asked, then acknowledge), and keeping the receipts of
those its own events caused (what `GET /v1/events/{id}` shows)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.agency import contracts as c
from maillage.agency import models, repository
from maillage.core.webhooks import repository as webhooks
from maillage.domain.events import NoticeAcknowledged, NoticeIssued, NoticeKind, SubjectErasureConfirmed
from maillage.domain.status import StatusReport


async def heed(
    session: AsyncSession, notice: NoticeIssued, *, subject_ref: str, now: datetime
) -> tuple[NoticeAcknowledged, list[str]]:
    """The receipt of a notice just stored in the inbox, and the events it erased. Under `erase`, what this
    agency holds goes first, in the same transaction — the person's every row for an erasure of the person,
    else the events named: inbox items and every webhook delivery of them (whose bodies carry the data) — so
    that the receipt never claims an erasure that did not happen. An erasure is confirmed as such."""
    if notice.kind is NoticeKind.SUBJECT_ERASED:
        events = await repository.erase_subject(session, subject_ref, keep=[str(notice.notice_id)])
        await webhooks.erase_deliveries_of(session, events)
        return SubjectErasureConfirmed(notice_id=notice.notice_id, acknowledged_at=now, erased=len(events)), events
    if notice.kind is NoticeKind.ROLE_CORRECTED and notice.role is not None:
        await repository.correct_role(session, subject_ref, notice.role.value)
    erased, events = 0, []
    if notice.erase:
        events = [str(e) for e in notice.events]
        erased = await repository.erase_inbox_items(session, events)
        await repository.erase_referrals(session, events)
        await webhooks.erase_deliveries_of(session, events)
    receipt = SubjectErasureConfirmed if notice.kind is NoticeKind.EVENTS_ERASED else NoticeAcknowledged
    return receipt(notice_id=notice.notice_id, acknowledged_at=now, erased=erased), events


async def keep_receipts(session: AsyncSession, report: StatusReport) -> None:
    """Notices this agency's event caused: delivered to a recipient, then acknowledged by it. A receipt
    redelivered changes nothing; an acknowledgement stays once given."""
    for line in report.notices:
        row = await repository.notice_receipt(session, line.notice_id)
        if row is None:
            row = models.NoticeReceipt(
                notice_id=line.notice_id,
                cause=report.event_id,
                recipient=line.recipient,
                kind=line.kind.value,
                events=line.events,
                categories=[str(category) for category in line.categories],
                erase=line.erase,
                holder=line.holder.value,
                misrouted=line.misrouted,
                disallowed=[str(category) for category in line.disallowed],
            )
        if line.state == "acknowledged":
            if row.acknowledged_at is None:
                row.acknowledged_at, row.erased = line.at, line.erased
        elif row.delivered_at is None:
            row.delivered_at = line.at
        session.add(row)


async def receipts(session: AsyncSession, causes: list[str]) -> dict[str, list[c.NoticeOut]]:
    """The notices each of these events caused, and their receipts, by recipient."""
    by_cause: dict[str, list[c.NoticeOut]] = defaultdict(list)
    for row in await repository.notice_receipts_of(session, causes):
        by_cause[row.cause].append(c.NoticeOut.model_validate(row, from_attributes=True))
    return by_cause
