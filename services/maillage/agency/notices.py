"""Notices at an agency: heeding one received (erase if asked, then acknowledge), and keeping the receipts of
those its own events caused (what `GET /v1/events/{id}` shows)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.agency import contracts as c
from maillage.agency import models, repository
from maillage.core.webhooks import repository as webhooks
from maillage.domain.events import NoticeAcknowledged, NoticeIssued
from maillage.domain.status import StatusReport


async def heed(session: AsyncSession, notice: NoticeIssued, *, now: datetime) -> NoticeAcknowledged:
    """The receipt of a notice just stored in the inbox. Under `erase`, what this agency holds of the events
    goes first, in the same transaction: their inbox items and every webhook delivery of them (whose bodies
    carry the data), so that the receipt never claims an erasure that did not happen."""
    erased = 0
    if notice.erase:
        events = [str(e) for e in notice.events]
        erased = await repository.erase_inbox_items(session, events)
        await webhooks.erase_deliveries_of(session, events)
    return NoticeAcknowledged(notice_id=notice.notice_id, acknowledged_at=now, erased=erased)


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
