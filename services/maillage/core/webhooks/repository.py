"""Every query of the webhook tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, bindparam, delete, func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.storage.repository import update_batch
from maillage.core.webhooks.models import Webhook, WebhookAttempt, WebhookDelivery
from maillage.domain.retention import FINISHED_WEBHOOK_DELIVERIES


def live(now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    """The webhooks that still receive pushes: active and not expired."""
    return and_(col(Webhook.active).is_(True), or_(col(Webhook.expires_at).is_(None), col(Webhook.expires_at) > now))


def _due(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (col(WebhookDelivery.state) == "pending", col(WebhookDelivery.next_attempt_at) <= now, live(now))


# Built once: each batch of deliveries an agency stores asks it.
_LIVE = select(Webhook).where(live(bindparam("now", type_=Webhook.__table__.c.expires_at.type)))  # type: ignore[attr-defined]


async def live_webhooks(session: AsyncSession, *, now: datetime) -> Sequence[Webhook]:
    return (await session.exec(_LIVE, params={"now": now})).all()


async def webhooks_with_due_deliveries(session: AsyncSession, *, now: datetime) -> set[str]:
    query = (
        select(WebhookDelivery.webhook_id)
        .distinct()
        .join(Webhook, col(Webhook.id) == WebhookDelivery.webhook_id)
        .where(*_due(now))
    )
    return set((await session.exec(query)).all())


async def next_attempt(session: AsyncSession, *, after: datetime) -> datetime | None:
    """When the soonest delivery not due yet will be: a retry waiting out its backoff, or one another process
    holds for its attempt (`claim`). Only those lie after now: a delivery's time is in the past once tried."""
    query = (
        select(WebhookDelivery.next_attempt_at)
        .where(col(WebhookDelivery.next_attempt_at) > after, col(WebhookDelivery.state) == "pending")
        .order_by(col(WebhookDelivery.next_attempt_at))
        .limit(1)
    )
    return (await session.exec(query)).first()


async def next_due(session: AsyncSession, webhook_id: str, *, now: datetime) -> tuple[WebhookDelivery, Webhook] | None:
    """The webhook's oldest delivery due now, with the webhook: its lane sends one at a time, in order."""
    query = (
        select(WebhookDelivery, Webhook)
        .join(Webhook, col(Webhook.id) == WebhookDelivery.webhook_id)
        .where(WebhookDelivery.webhook_id == webhook_id, *_due(now))
        .order_by(col(WebhookDelivery.id))
        .limit(1)
    )
    row = (await session.exec(query)).first()
    return (row[0], row[1]) if row is not None else None


async def claim(session: AsyncSession, delivery_id: int, *, now: datetime, until: datetime) -> bool:
    """Take a due delivery for one attempt, until `until`: True for the one process whose update found it still
    due. A compare-and-set, so it holds on SQLite as on PostgreSQL; a process that dies mid-attempt leaves it
    due again once `until` has passed (delivered at least once, never lost)."""
    claimed = await session.exec(
        update(WebhookDelivery)
        .where(
            col(WebhookDelivery.id) == delivery_id,
            col(WebhookDelivery.state) == "pending",
            col(WebhookDelivery.next_attempt_at) <= now,
        )
        .values(next_attempt_at=until)
    )
    return bool(claimed.rowcount == 1)


async def delivery(session: AsyncSession, delivery_id: int) -> WebhookDelivery | None:
    return await session.get(WebhookDelivery, delivery_id)


async def webhook(session: AsyncSession, webhook_id: str) -> Webhook | None:
    return await session.get(Webhook, webhook_id)


async def webhooks(session: AsyncSession) -> Sequence[Webhook]:
    return (await session.exec(select(Webhook).order_by(col(Webhook.created_at)))).all()


async def count(session: AsyncSession) -> int:
    return int((await session.exec(select(func.count()).select_from(Webhook))).one())


async def delete_webhook(session: AsyncSession, hook: Webhook) -> None:
    """The registration, and every delivery and attempt kept for it (their bodies carry case data)."""
    deliveries = select(WebhookDelivery.id).where(WebhookDelivery.webhook_id == hook.id)
    await session.exec(delete(WebhookAttempt).where(col(WebhookAttempt.delivery_id).in_(deliveries)))
    await session.exec(delete(WebhookDelivery).where(col(WebhookDelivery.webhook_id) == hook.id))
    await session.delete(hook)


async def erase_deliveries_of(session: AsyncSession, event_ids: list[str]) -> None:
    """Every delivery of these events, sent or not, and its attempts: their bodies carry what must be erased."""
    deliveries = select(WebhookDelivery.id).where(col(WebhookDelivery.event_id).in_(event_ids))
    await session.exec(delete(WebhookAttempt).where(col(WebhookAttempt.delivery_id).in_(deliveries)))
    await session.exec(delete(WebhookDelivery).where(col(WebhookDelivery.event_id).in_(event_ids)))


async def deliveries_page(
    session: AsyncSession, webhook_id: str, *, after: int, limit: int
) -> tuple[Sequence[WebhookDelivery], Sequence[WebhookAttempt]]:
    """A page of the webhook's deliveries, oldest first, and every attempt at them."""
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == webhook_id, col(WebhookDelivery.id) > after)
        .order_by(col(WebhookDelivery.id))
        .limit(limit)
    )
    found = (await session.exec(query)).all()
    ids = [d.id for d in found]
    attempts = (
        await session.exec(
            select(WebhookAttempt).where(col(WebhookAttempt.delivery_id).in_(ids)).order_by(col(WebhookAttempt.id))
        )
    ).all()
    return found, attempts


def _finished_before(before: datetime) -> tuple[ColumnElement[bool], ...]:
    """Deliveries delivered or given up, whose last attempt (or creation, without any) is before `before`."""
    later = (
        select(WebhookAttempt.id)
        .where(col(WebhookAttempt.delivery_id) == WebhookDelivery.id, col(WebhookAttempt.at) >= before)
        .correlate(WebhookDelivery)
    )
    return (
        col(WebhookDelivery.state).in_(FINISHED_WEBHOOK_DELIVERIES),
        col(WebhookDelivery.created_at) < before,
        ~later.exists(),
    )


async def erase_finished_bodies(session: AsyncSession, before: datetime, limit: int) -> int:
    """The bodies of deliveries finished before `before`, erased; the delivery's metadata stays."""
    not_erased = col(WebhookDelivery.body) != b""
    return await update_batch(
        session, WebhookDelivery.id, *_finished_before(before), not_erased, values={"body": b""}, limit=limit
    )


async def purge_finished_deliveries(session: AsyncSession, before: datetime, limit: int) -> int:
    """Deliveries finished before `before`, with their attempts, in one transaction."""
    chosen = (await session.exec(select(WebhookDelivery.id).where(*_finished_before(before)).limit(limit))).all()
    if chosen:
        await session.exec(delete(WebhookAttempt).where(col(WebhookAttempt.delivery_id).in_(chosen)))
        await session.exec(delete(WebhookDelivery).where(col(WebhookDelivery.id).in_(chosen)))
    return len(chosen)
