"""Every query of the gateway's tables: consent grants, events already decided, return routes."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, or_
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.clock import as_utc
from maillage.core.storage.repository import delete_batch, insert_rows, read_rows
from maillage.domain.answers import Route
from maillage.domain.disclosure import Grant
from maillage.domain.grounds import Conference
from maillage.domain.vocabulary import Category, Purpose, Role
from maillage.gateway.models import (
    ConferenceRow,
    GrantRow,
    IssuedReportRow,
    NoticeRow,
    ProcessedEvent,
    ReportHoldRow,
    ReturnRoute,
    SubjectRoleRow,
)


@dataclass
class NewRows:
    """A batch's new rows of the append-only tables, inserted in bulk when it ends: building an ORM object
    per row cost more than the rest of a decision."""

    processed: list[dict[str, Any]] = field(default_factory=list)
    routes: list[dict[str, Any]] = field(default_factory=list)


async def insert_new(session: AsyncSession, rows: NewRows) -> None:
    tables: list[tuple[type[SQLModel], list[dict[str, Any]]]] = [
        (ProcessedEvent, rows.processed),
        (ReturnRoute, rows.routes),
    ]
    for table, values in tables:
        await insert_rows(session, table, values)


async def active_grants(session: AsyncSession) -> list[tuple[str, Grant]]:
    """Every consent not withdrawn, with the subject it is about."""
    rows = await session.exec(select(GrantRow).where(col(GrantRow.withdrawn_at).is_(None)))
    return [(row.subject_ref, _grant(row)) for row in rows.all()]


async def add_grant(session: AsyncSession, row: GrantRow) -> Grant | None:
    """Registers a consent; None when one with its id is registered already (the same event again)."""
    if await session.get(GrantRow, row.consent_id) is not None:
        return None
    session.add(row)
    return _grant(row)


async def grant_row(session: AsyncSession, consent_id: str) -> GrantRow | None:
    return await session.get(GrantRow, consent_id)


def withdraw(session: AsyncSession, row: GrantRow, *, at: datetime) -> None:
    """Withdrawn once: the first withdrawal's time stays."""
    if row.withdrawn_at is None:
        row.withdrawn_at = at
        session.add(row)


async def return_routes(session: AsyncSession) -> dict[str, Route]:
    routes = await session.exec(select(ReturnRoute))
    return {r.event_id: Route(sender=r.sender, recipients=tuple(r.recipients)) for r in routes.all()}


# Built once (each batch asks it): building the statement, its IN list most of all, cost more than running it.
_PROCESSED_TABLE = ProcessedEvent.__table__  # type: ignore[attr-defined]
_PROCESSED = select(
    *(_PROCESSED_TABLE.c[name] for name in ("event_id", "digest", "partition", "offset", "disclosures"))
).where(_PROCESSED_TABLE.c.event_id.in_(bindparam("ids", expanding=True)))


async def processed(session: AsyncSession, event_ids: Sequence[str]) -> list[Mapping[str, Any]]:
    """The events among `event_ids` already decided: each one's event id, digest, partition, offset and
    disclosures (`ProcessedEvent`'s columns)."""
    return await read_rows(session, _PROCESSED, {"ids": list(event_ids)}) if event_ids else []


async def conferences(session: AsyncSession, ids: Collection[str] | None = None) -> dict[str, Conference]:
    """Every case conference convened, closed or not (a late disclosure under a closed one is denied by name);
    only those of `ids` when given."""
    query = select(ConferenceRow)
    if ids is not None:
        query = query.where(col(ConferenceRow.conference_id).in_(ids))
    rows = await session.exec(query)
    return {row.conference_id: conference_of(row) for row in rows.all()}


async def conference_row(session: AsyncSession, conference_id: str) -> ConferenceRow | None:
    return await session.get(ConferenceRow, conference_id)


def conference_of(row: ConferenceRow) -> Conference:
    ends_at = as_utc(row.ends_at)
    return Conference(
        conference_id=row.conference_id,
        convener=row.convener,
        participants=frozenset(row.participants),
        subjects=frozenset(row.subjects),
        ends_at=ends_at,
        closed=row.closed_at is not None,
    )


def _grant(row: GrantRow) -> Grant:
    return Grant(
        consent_id=row.consent_id,
        obtained_by=row.granted_by,
        categories=frozenset(Category(c) for c in row.categories),
        recipients=frozenset(row.recipients),
        purposes=frozenset(Purpose(p) for p in row.purposes),
        valid_until=row.valid_until,
        disclosers=frozenset(row.disclosers or ()),
    )


# --- notices to past recipients -------------------------------------------------------------------


async def notice(session: AsyncSession, notice_id: str) -> NoticeRow | None:
    return await session.get(NoticeRow, notice_id)


async def notices_of(session: AsyncSession, cause: str) -> Sequence[NoticeRow]:
    """The notices an event caused, by recipient."""
    query = select(NoticeRow).where(NoticeRow.cause == cause).order_by(col(NoticeRow.recipient))
    return (await session.exec(query)).all()


async def unconfirmed(session: AsyncSession, *, kinds: Sequence[str], issued_before: datetime) -> Sequence[NoticeRow]:
    """Notices of these kinds issued before a time and still not acknowledged, oldest first."""
    query = (
        select(NoticeRow)
        .where(
            col(NoticeRow.kind).in_(kinds),
            col(NoticeRow.acknowledged_at).is_(None),
            col(NoticeRow.issued_at) < issued_before,
        )
        .order_by(col(NoticeRow.issued_at))
    )
    return (await session.exec(query)).all()


# --- a person's role, as corrected; a person forgotten --------------------------------------------


async def corrected_roles(session: AsyncSession) -> dict[str, Role]:
    return {row.subject_ref: Role(row.role) for row in (await session.exec(select(SubjectRoleRow))).all()}


async def correct_role(session: AsyncSession, row: SubjectRoleRow) -> None:
    await session.merge(row)


async def forget_subject(session: AsyncSession, subject_ref: str) -> list[str]:
    """The person's consents, return routes and corrected role, gone from the gateway's tables (the audit
    chain and the notices, metadata the law asks to keep, stay); the events whose routes went."""
    routes = await session.exec(select(ReturnRoute.event_id).where(ReturnRoute.subject_ref == subject_ref))
    event_ids = list(routes.all())
    for table, column in (
        (GrantRow, GrantRow.subject_ref),
        (ReturnRoute, ReturnRoute.subject_ref),
        (SubjectRoleRow, SubjectRoleRow.subject_ref),
    ):
        await session.exec(delete(table).where(col(column) == subject_ref))
    return event_ids


# --- the person's disclosure report ---------------------------------------------------------------


async def report_holds(session: AsyncSession, subject_ref: str) -> Sequence[ReportHoldRow]:
    return (await session.exec(select(ReportHoldRow).where(ReportHoldRow.subject_ref == subject_ref))).all()


async def report_hold(session: AsyncSession, hold_id: str) -> ReportHoldRow | None:
    return await session.get(ReportHoldRow, hold_id)


async def issued_reports_of(session: AsyncSession, request_event_id: str) -> Sequence[IssuedReportRow]:
    query = select(IssuedReportRow).where(IssuedReportRow.request_event_id == request_event_id)
    return (await session.exec(query)).all()


# --- retention: what finished before a cut-off, in batches (maillage.core.storage.retention) -----------


async def purge_processed(session: AsyncSession, before: datetime, limit: int) -> int:
    """Decisions taken before `before`: their records can no longer be read again from maillage.submitted (the
    network file refuses a period shorter than that topic's retention)."""
    old = col(ProcessedEvent.decided_at) < before
    return await delete_batch(session, ProcessedEvent.event_id, old, limit=limit)


async def purge_ended_grants(session: AsyncSession, before: datetime, limit: int) -> int:
    """Consents withdrawn, or expired, before `before`: they allow nothing any more."""
    ended = or_(col(GrantRow.withdrawn_at) < before, col(GrantRow.valid_until) < before)
    return await delete_batch(session, GrantRow.consent_id, ended, limit=limit)
