"""Every query of the dispatcher's tables (the fallback webhooks' through core/webhooks/repository.py)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.storage.repository import delete_batch
from maillage.core.webhooks import repository as webhooks
from maillage.core.webhooks.models import Webhook, WebhookDelivery
from maillage.dispatcher.models import OncallAlert, Paging
from maillage.domain.escalation import SHOWN, AlertState
from maillage.domain.retention import FINISHED_ALERTS


def fallback_webhook_id(agency_id: str) -> str:
    return f"fallback:{agency_id}"


async def known(session: AsyncSession, *, agency: str, alert_id: str) -> bool:
    found = await session.exec(
        select(OncallAlert.id).where(OncallAlert.agency_id == agency, OncallAlert.alert_id == alert_id)
    )
    return found.first() is not None


async def erase_alert_data(session: AsyncSession, *, agency: str, alert_ids: Collection[str]) -> None:
    """What the agency received in these alerts, gone: their data and the bodies of their fallback calls."""
    rows = await session.exec(
        select(OncallAlert).where(OncallAlert.agency_id == agency, col(OncallAlert.alert_id).in_(alert_ids))
    )
    for row in rows.all():
        row.data = {}
        session.add(row)
    await webhooks.erase_deliveries_of(session, list(alert_ids))


async def correct_role(session: AsyncSession, *, agency: str, subject_ref: str, role: str) -> None:
    rows = await session.exec(
        select(OncallAlert).where(OncallAlert.agency_id == agency, OncallAlert.subject_ref == subject_ref)
    )
    for row in rows.all():
        row.subject_role = role
        session.add(row)


async def erase_alerts(session: AsyncSession, *, agency: str, alert_ids: Collection[str]) -> int:
    """These alerts to the agency, gone with their pages and fallback calls; how many there were."""
    rows = await session.exec(
        select(OncallAlert).where(OncallAlert.agency_id == agency, col(OncallAlert.alert_id).in_(alert_ids))
    )
    return await _erase(session, agency, rows.all())


async def erase_subject(session: AsyncSession, *, agency: str, subject_ref: str) -> int:
    """Every alert about a person to the agency, gone with their pages and fallback calls; how many."""
    rows = await session.exec(
        select(OncallAlert).where(OncallAlert.agency_id == agency, OncallAlert.subject_ref == subject_ref)
    )
    return await _erase(session, agency, rows.all())


async def _erase(session: AsyncSession, agency: str, rows: Sequence[OncallAlert]) -> int:
    alert_ids = [row.alert_id for row in rows]
    for row in rows:
        await session.delete(row)
    await session.exec(delete(Paging).where(col(Paging.agency_id) == agency, col(Paging.alert_id).in_(alert_ids)))
    await webhooks.erase_deliveries_of(session, alert_ids)
    return len(alert_ids)


async def alert(session: AsyncSession, *, agency: str, alert_id: str) -> OncallAlert | None:
    found = await session.exec(
        select(OncallAlert).where(OncallAlert.agency_id == agency, OncallAlert.alert_id == alert_id)
    )
    return found.first()


async def paging_about(session: AsyncSession, *, agency: str, subject_ref: str) -> Sequence[OncallAlert]:
    """The alerts still paging about one person at one agency, oldest first: what a new one may join."""
    query = (
        select(OncallAlert)
        .where(
            OncallAlert.agency_id == agency,
            OncallAlert.subject_ref == subject_ref,
            OncallAlert.state == AlertState.OPEN,
            col(OncallAlert.group_of).is_(None),
        )
        .order_by(col(OncallAlert.received_at), col(OncallAlert.id))
    )
    return (await session.exec(query)).all()


async def members(session: AsyncSession, primary: OncallAlert) -> list[OncallAlert]:
    """The alerts grouped under `primary` (not itself)."""
    if primary.grouped == 1:
        return []
    query = select(OncallAlert).where(
        OncallAlert.agency_id == primary.agency_id, OncallAlert.group_of == primary.alert_id
    )
    return list((await session.exec(query)).all())


async def members_of(session: AsyncSession, *, agency: str, primaries: Collection[str]) -> dict[str, list[OncallAlert]]:
    """The alerts grouped under each of `primaries`, by primary."""
    grouped: dict[str, list[OncallAlert]] = defaultdict(list)
    if not primaries:
        return grouped
    query = select(OncallAlert).where(OncallAlert.agency_id == agency, col(OncallAlert.group_of).in_(primaries))
    for member in (await session.exec(query)).all():
        grouped[member.group_of or ""].append(member)
    return grouped


async def shown_at(session: AsyncSession, *, agency: str) -> Sequence[OncallAlert]:
    """The agency's alerts a worker may see (open, or let pass by every level), oldest first."""
    query = (
        select(OncallAlert)
        .where(OncallAlert.agency_id == agency, col(OncallAlert.state).in_(SHOWN))
        .order_by(col(OncallAlert.received_at))
    )
    return (await session.exec(query)).all()


async def paging(session: AsyncSession, *, agencies: Collection[str], due_by: datetime | None) -> Sequence[OncallAlert]:
    """The alerts still paging at `agencies` (groups by their first alert), oldest first; with `due_by`, only
    those whose level ran out of time by then."""
    query = select(OncallAlert).where(
        OncallAlert.state == AlertState.OPEN,
        col(OncallAlert.group_of).is_(None),
        col(OncallAlert.agency_id).in_(agencies),
    )
    if due_by is not None:
        query = query.where(col(OncallAlert.deadline) <= due_by)
    # Claimed until the caller's transaction ends: two dispatchers on one PostgreSQL database never both act on
    # one alert (an alert escalated twice tells its sender twice). Rows another one holds are left to it; once
    # it commits, their new deadline keeps them out of the next turn. SQLite has one writer: nothing to add.
    query = query.with_for_update(skip_locked=True)
    return (await session.exec(query.order_by(col(OncallAlert.received_at)))).all()


async def first_deadline(session: AsyncSession, *, agencies: Collection[str]) -> datetime | None:
    query = (
        select(OncallAlert.deadline)
        .where(
            OncallAlert.state == AlertState.OPEN,
            col(OncallAlert.agency_id).in_(agencies),
            col(OncallAlert.deadline).is_not(None),
        )
        .order_by(col(OncallAlert.deadline))
        .limit(1)
    )
    return (await session.exec(query)).first()


async def unacknowledged(session: AsyncSession, *, after: int, limit: int) -> Sequence[OncallAlert]:
    """Alerts every level let pass, in the order they were stored, after position `after`."""
    query = (
        select(OncallAlert)
        .where(OncallAlert.state == AlertState.UNACKNOWLEDGED, col(OncallAlert.id) > after)
        .order_by(col(OncallAlert.id))
        .limit(limit)
    )
    return (await session.exec(query)).all()


def add_paging(
    session: AsyncSession, *, agency: str, alert_id: str, level: int, workers: Collection[str], at: datetime
) -> None:
    session.add(Paging(agency_id=agency, alert_id=alert_id, level=level, workers=sorted(workers), paged_at=at))


async def paged(session: AsyncSession) -> dict[tuple[str, str], frozenset[str]]:
    """Who was paged for each alert (agency, alert id): never paged again, restarts included."""
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for paging in (await session.exec(select(Paging))).all():
        found[(paging.agency_id, paging.alert_id)].update(paging.workers)
    return {key: frozenset(workers) for key, workers in found.items()}


def add_fallback_call(session: AsyncSession, *, agency: str, alert_id: str, body: bytes, at: datetime) -> None:
    """A call of the agency's fallback webhook, signed, retried and traced like any webhook delivery."""
    session.add(
        WebhookDelivery(
            webhook_id=fallback_webhook_id(agency), event_id=alert_id, body=body, next_attempt_at=at, created_at=at
        )
    )


async def fallback_webhook(session: AsyncSession, *, agency: str) -> Webhook | None:
    return await webhooks.webhook(session, fallback_webhook_id(agency))


# --- retention: what finished before a cut-off, in batches (maillage.core.storage.retention) -----------


async def purge_acknowledged_alerts(session: AsyncSession, before: datetime, limit: int) -> int:
    """Alerts acknowledged before `before` (a group's members are acknowledged with it); an alert no one took
    in hand stays, however old."""
    finished = col(OncallAlert.state).in_(FINISHED_ALERTS), col(OncallAlert.acknowledged_at) < before
    return await delete_batch(session, OncallAlert.id, *finished, limit=limit)


async def purge_orphan_pages(session: AsyncSession, before: datetime, limit: int) -> int:
    """Pagings of alerts no longer here (purged by purge_acknowledged_alerts, or erased)."""
    alert = (
        select(OncallAlert.id)
        .where(col(OncallAlert.agency_id) == Paging.agency_id, col(OncallAlert.alert_id) == Paging.alert_id)
        .correlate(Paging)
    )
    return await delete_batch(session, Paging.id, col(Paging.paged_at) < before, ~alert.exists(), limit=limit)
