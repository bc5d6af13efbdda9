"""Every query of the audit chain's tables: its records, its signed checkpoints, its full walks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import JSON, Select, Text, func, or_, type_coerce, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.audit.models import AuditCheckpoint, AuditRow, AuditWalk
from maillage.core.storage.repository import insert_table_rows
from maillage.domain.audit import OPTIONAL_FIELDS
from maillage.domain.disclosure import Outcome
from maillage.domain.notices import NOTIFIED

CHUNK = 1000
AUDIT = AuditRow.__table__  # type: ignore[attr-defined]
# JSON columns read as their stored text: a tampered value that is no longer JSON must show as a
# broken record, not stop the walk.
_JSON_COLUMNS = {c.name for c in AUDIT.c if isinstance(c.type, JSON)}
_WRITTEN = [c.name for c in AUDIT.c if c.name != "id"]  # numbered by the database
_AS_STORED = [type_coerce(c, Text).label(c.name) if c.name in _JSON_COLUMNS else c for c in AUDIT.c]
DISCLOSED = (Outcome.DELIVERED.value, Outcome.FILTERED.value)


async def append(session: AsyncSession, records: Sequence[Mapping[str, Any]]) -> None:
    """The records in one bulk statement: building an ORM object per record cost more than deciding it.

    Every record gets every column: a bulk insert takes its column list from the first record, and a later
    record's optional field (who raised an alert) would otherwise be dropped — the stored row would then no
    longer match its hash, and an untampered chain would read as broken."""
    await insert_table_rows(session, AUDIT, [{name: r.get(name) for name in _WRITTEN} for r in records])


async def heads(session: AsyncSession) -> dict[int, tuple[int, str]]:
    """Each chain's tip, seq and hash: the chain's next record links to it."""
    tips = select(AUDIT.c.chain, func.max(AUDIT.c.seq).label("seq")).group_by(AUDIT.c.chain).subquery()
    query = select(AUDIT.c.chain, AUDIT.c.seq, AUDIT.c.hash).join(
        tips, (AUDIT.c.chain == tips.c.chain) & (AUDIT.c.seq == tips.c.seq)
    )
    conn = await session.connection()
    return {chain: (seq, hash_) for chain, seq, hash_ in (await conn.execute(query)).all()}


async def of_event(session: AsyncSession, event_id: str) -> list[dict[str, Any]]:
    """An event's records in chain order, exactly as they were hashed."""
    return await _as_hashed(session, select(*_AS_STORED).where(AUDIT.c.event_id == event_id).order_by(AUDIT.c.id))


async def reviewed(session: AsyncSession, alert_id: str) -> bool:
    """Whether a decision on this alert's danger disclosures is in the chain already."""
    return (
        await session.exec(select(AuditRow.id).where(col(AuditRow.alert_id) == alert_id).limit(1))
    ).first() is not None


async def chain_ends(session: AsyncSession) -> dict[int, tuple[int, int]]:
    """Each chain's last seq and its number of records."""
    conn = await session.connection()
    ends = await conn.execute(select(AUDIT.c.chain, func.max(AUDIT.c.seq), func.count()).group_by(AUDIT.c.chain))
    return {chain: (end, count) for chain, end, count in ends.all()}


async def record_at(session: AsyncSession, chain: int, seq: int) -> dict[str, Any] | None:
    """A chain's record at `seq`, as hashed; None if there is none."""
    records = await _as_hashed(session, select(*_AS_STORED).where(AUDIT.c.chain == chain, AUDIT.c.seq == seq))
    return records[0] if records else None


async def walk_chain(
    sessions: async_sessionmaker[AsyncSession], chain: int, *, after: int, end: int, chunk: int = CHUNK
) -> AsyncGenerator[list[dict[str, Any]]]:
    """A chain's records after seq `after` up to `end`, in seq order, as hashed, `chunk` records at a time.

    A short read per chunk, not one long transaction: a reader holding SQLite's WAL snapshot for
    minutes would stop checkpoints while the gateways keep writing.
    """
    while after < end:
        query = select(*_AS_STORED).where(AUDIT.c.chain == chain, AUDIT.c.seq > after, AUDIT.c.seq <= end)
        async with sessions() as session:
            records = await _as_hashed(session, query.order_by(AUDIT.c.seq).limit(chunk))
        if not records:
            return
        yield records
        after = records[-1]["seq"]


async def checkpoints(session: AsyncSession) -> dict[int, AuditCheckpoint]:
    """Each chain's last signed checkpoint, unchecked."""
    return {row.chain: row for row in (await session.exec(select(AuditCheckpoint))).all()}


async def save_checkpoint(session: AsyncSession, checkpoint: AuditCheckpoint) -> None:
    """Move a chain's checkpoint forward to `checkpoint`, never back: two gateways verifying at once each
    found their link intact, and the later link covers the earlier one."""
    table = AuditCheckpoint.__table__  # type: ignore[attr-defined]
    dialect = (await session.connection()).dialect.name
    upsert = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(table).values(checkpoint.model_dump())
    await session.exec(
        upsert.on_conflict_do_update(
            index_elements=[table.c.chain],
            set_={c.name: upsert.excluded[c.name] for c in table.c if c.name != "chain"},
            where=upsert.excluded.seq > table.c.seq,
        )
    )


async def latest_walk(session: AsyncSession) -> AuditWalk | None:
    """The full walk started last, running or not."""
    query = select(AuditWalk).order_by(col(AuditWalk.started_at).desc(), col(AuditWalk.id)).limit(1)
    return (await session.exec(query)).first()


async def walk_of(session: AsyncSession, walk_id: str) -> AuditWalk | None:
    return await session.get(AuditWalk, walk_id)


def add_walk(session: AsyncSession, walk: AuditWalk) -> None:
    session.add(walk)


async def walk_progressed(
    session: AsyncSession, walk_id: str, *, at: datetime, done: int, total: int, report: dict[str, Any] | None
) -> None:
    """A running walk's heartbeat and progress; with its report, its end."""
    values: dict[str, Any] = {"updated_at": at, "records_done": done, "records_total": total}
    if report is not None:
        values |= {"finished_at": at, "report": report}
    await session.exec(update(AuditWalk).where(col(AuditWalk.id) == walk_id).values(**values))


async def latest_finished_walk(session: AsyncSession) -> AuditWalk | None:
    query = (
        select(AuditWalk)
        .where(col(AuditWalk.finished_at).is_not(None))
        .order_by(col(AuditWalk.finished_at).desc(), col(AuditWalk.id))
        .limit(1)
    )
    return (await session.exec(query)).first()


async def disclosures_about(
    session: AsyncSession, subject_ref: str, *, source: str, after: int, limit: int, or_received: bool = False
) -> Sequence[AuditRow]:
    """The records of what `source` disclosed about `subject_ref` (denials left out), of the notices its
    events sent past recipients and of its reviews of danger disclosures, oldest first, after the record
    `after`; with `or_received`, also what it received about it."""
    party = col(AuditRow.source) == source
    if or_received:
        party = or_(party, col(AuditRow.recipient) == source)
    query = (
        select(AuditRow)
        .where(col(AuditRow.subject_ref) == subject_ref)
        .where(party)
        .where(or_(col(AuditRow.outcome).in_((*DISCLOSED, NOTIFIED)), col(AuditRow.decision).is_not(None)))
        .where(col(AuditRow.id) > after)
        .order_by(col(AuditRow.id))
        .limit(limit)
    )
    return (await session.exec(query)).all()


async def disclosed_about(session: AsyncSession, subject_ref: str) -> list[dict[str, Any]]:
    """Every record of a disclosure about `subject_ref` (denials left out), in chain order, as hashed: who
    received what about the person, and under which consents (gateway/notices.py)."""
    query = (
        select(*_AS_STORED)
        .where(AUDIT.c.subject_ref == subject_ref, AUDIT.c.outcome.in_(DISCLOSED))
        .order_by(AUDIT.c.id)
    )
    return await _as_hashed(session, query)


async def recorded_about(session: AsyncSession, subject_ref: str) -> list[dict[str, Any]]:
    """Every record about `subject_ref`, whatever its outcome, in chain order: who sent and who received
    anything about the person (gateway/erasure.py)."""
    query = select(*_AS_STORED).where(AUDIT.c.subject_ref == subject_ref).order_by(AUDIT.c.id)
    return await _as_hashed(session, query)


async def _as_hashed(session: AsyncSession, query: Select[Any]) -> list[dict[str, Any]]:
    conn = await session.connection()
    return [_record(row) for row in (await conn.execute(query)).mappings().all()]


def _record(row: Mapping[str, Any]) -> dict[str, Any]:
    record = dict(row)
    record.pop("id", None)  # the storage order, not part of the record
    for name in OPTIONAL_FIELDS:
        if record.get(name) is None:
            record.pop(name, None)  # hashed only when it applied
    for name in _JSON_COLUMNS & record.keys():
        # Left as stored when it is no JSON: then it cannot hash as the original did.
        with contextlib.suppress(orjson.JSONDecodeError, TypeError):
            record[name] = orjson.loads(record[name])
    return record
