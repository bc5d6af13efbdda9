"""Every query of the monitor's tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.storage.repository import delete_batch
from maillage.monitor.models import DeadLetter, Decision, ErasureNotice, OncallOutcome, Rejection, Review

# --- decisions ----------------------------------------------------------------------------------


async def outcome_counts(session: AsyncSession, *, since: datetime) -> dict[str, int]:
    query = select(Decision.outcome, func.count()).where(Decision.recorded_at >= since).group_by(Decision.outcome)
    return {outcome: int(count) for outcome, count in (await session.exec(query)).all()}


async def decided_since(session: AsyncSession, *, since: datetime) -> Sequence[tuple[datetime, str, str]]:
    """When, for which sector and with which outcome each decision since then was taken."""
    query = select(Decision.recorded_at, Decision.sector, Decision.outcome).where(Decision.recorded_at >= since)
    return (await session.exec(query)).all()


async def decision_totals(
    session: AsyncSession, *, since: datetime
) -> Sequence[tuple[str, str, str, str, int, int | None]]:
    """Per event type, sector, outcome and basis: how many decisions, and how many categories they removed."""
    grouping = (Decision.event_type, Decision.sector, Decision.outcome, Decision.legal_basis)
    # sqlmodel types select() for up to four columns; this one has six.
    query = select(*grouping, func.count(), func.sum(Decision.removed))  # type: ignore[call-overload]
    totals: Sequence[tuple[str, str, str, str, int, int | None]] = (
        await session.exec(query.where(Decision.recorded_at >= since).group_by(*grouping))
    ).all()
    return totals


async def decided_between(session: AsyncSession, *, start: datetime, end: datetime) -> Sequence[Decision]:
    """Every decision recorded in [start, end): what the Pôles' figures are made from."""
    query = select(Decision).where(Decision.recorded_at >= start, Decision.recorded_at < end)
    return (await session.exec(query)).all()


async def alert_poles(
    session: AsyncSession, *, event_type: str, start: datetime, end: datetime
) -> dict[tuple[str, str], str | None]:
    """The Pôle of each alert at each recipient, from its decisions recorded in [start, end)."""
    query = select(Decision.event_id, Decision.recipient, Decision.pole).where(
        Decision.event_type == event_type, Decision.recorded_at >= start, Decision.recorded_at < end
    )
    return {(alert, agency): pole for alert, agency, pole in (await session.exec(query)).all()}


async def decision_known(session: AsyncSession, *, chain: int, seq: int) -> bool:
    return await session.get(Decision, (chain, seq)) is not None


async def rejections_since(session: AsyncSession, *, since: datetime) -> int:
    return int((await session.exec(select(func.count()).select_from(Rejection).where(Rejection.at >= since))).one())


async def rejection_known(session: AsyncSession, event_id: str) -> bool:
    return await session.get(Rejection, event_id) is not None


# --- dead letters -------------------------------------------------------------------------------


async def dead_letters_waiting(session: AsyncSession) -> int:
    query = select(func.count()).select_from(DeadLetter).where(col(DeadLetter.replayed_at).is_(None))
    return int((await session.exec(query)).one())


async def dead_letters(session: AsyncSession, *, limit: int, waiting: bool) -> Sequence[DeadLetter]:
    """The latest first; `waiting`: only those not replayed yet."""
    query = select(DeadLetter).order_by(col(DeadLetter.id).desc()).limit(limit)
    if waiting:
        query = query.where(col(DeadLetter.replayed_at).is_(None))
    return (await session.exec(query)).all()


async def dead_letter(session: AsyncSession, dead_letter_id: int) -> DeadLetter | None:
    return await session.get(DeadLetter, dead_letter_id)


async def dead_letter_known(session: AsyncSession, *, topic: str, partition: int, offset: int) -> bool:
    query = select(DeadLetter.id).where(
        DeadLetter.dlq_topic == topic, DeadLetter.dlq_partition == partition, DeadLetter.dlq_offset == offset
    )
    return (await session.exec(query)).first() is not None


# --- reviews ------------------------------------------------------------------------------------


async def reviews_pending(session: AsyncSession) -> int:
    query = select(func.count()).select_from(Review).where(Review.status == "pending")
    return int((await session.exec(query)).one())


async def review_counts(session: AsyncSession) -> dict[str, int]:
    query = select(Review.status, func.count()).group_by(Review.status)
    return {status: int(count) for status, count in (await session.exec(query)).all()}


async def oldest_pending_review(session: AsyncSession) -> datetime | None:
    query = select(func.min(Review.recorded_at)).where(Review.status == "pending")
    oldest: datetime | None = (await session.exec(query)).one()
    return oldest


async def review(session: AsyncSession, alert_id: str) -> Review | None:
    return await session.get(Review, alert_id)


# --- on-call outcomes ---------------------------------------------------------------------------


async def alerts_unacknowledged(session: AsyncSession) -> int:
    query = select(func.count()).select_from(OncallOutcome).where(OncallOutcome.state == "unacknowledged")
    return int((await session.exec(query)).one())


async def unanswered_page(session: AsyncSession, *, after: int, limit: int) -> Sequence[OncallOutcome]:
    query = (
        select(OncallOutcome)
        .where(OncallOutcome.state == "unacknowledged", col(OncallOutcome.id) > after)
        .order_by(col(OncallOutcome.id))
        .limit(limit)
    )
    return (await session.exec(query)).all()


async def acknowledged_between(session: AsyncSession, *, start: datetime, end: datetime) -> Sequence[OncallOutcome]:
    """Alerts received in [start, end) and acknowledged."""
    query = select(OncallOutcome).where(
        OncallOutcome.state == "acknowledged", OncallOutcome.received_at >= start, OncallOutcome.received_at < end
    )
    return (await session.exec(query)).all()


async def oncall_outcome(session: AsyncSession, *, agency: str, alert_id: str) -> OncallOutcome | None:
    query = select(OncallOutcome).where(OncallOutcome.agency == agency, OncallOutcome.alert_id == alert_id)
    return (await session.exec(query)).first()


async def purge_dead_letters(session: AsyncSession, before: datetime, limit: int) -> int:
    """Dead letters recorded before `before`: long past the dead-letter topics' retention, none can be replayed."""
    return await delete_batch(session, DeadLetter.id, col(DeadLetter.at) < before, limit=limit)


# --- erasures holders have not confirmed --------------------------------------------------------


async def erasure_notice(session: AsyncSession, notice_id: str) -> ErasureNotice | None:
    return await session.get(ErasureNotice, notice_id)


def _unconfirmed(issued_before: datetime) -> tuple[Any, ...]:
    return col(ErasureNotice.confirmed_at).is_(None), col(ErasureNotice.issued_at) < issued_before


async def unconfirmed_erasure_count(session: AsyncSession, *, issued_before: datetime) -> int:
    query = select(func.count()).select_from(ErasureNotice).where(*_unconfirmed(issued_before))
    return int((await session.exec(query)).one())


async def unconfirmed_erasures(session: AsyncSession, *, issued_before: datetime) -> Sequence[ErasureNotice]:
    query = select(ErasureNotice).where(*_unconfirmed(issued_before)).order_by(col(ErasureNotice.issued_at))
    return (await session.exec(query)).all()
