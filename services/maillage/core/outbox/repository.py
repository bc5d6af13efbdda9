"""Every query of the outbox table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.messaging.envelope import Headers
from maillage.core.outbox.models import OutboxRecord, Pending, Unpublished
from maillage.core.storage.repository import change_rows, delete_batch, insert_rows, read_rows


def new_row(
    *, event_id: str, topic: str, key: bytes, value: bytes, headers: Headers, at: datetime, tag: str | None = None
) -> dict[str, Any]:
    """A record's columns, as `add` writes them."""
    return {
        "event_id": event_id,
        "topic": topic,
        "key": key,
        "value": value,
        "headers": orjson.dumps([(k, v.decode()) for k, v in headers]),
        "tag": tag,
        "created_at": at,
    }


async def add(session: AsyncSession, row: dict[str, Any]) -> None:
    await insert_rows(session, OutboxRecord, [row])


# The relay's statements, built once: it runs them at every turn, and building them cost more than SQLite's
# running them (README "A lean pipeline", eleventh round).
_TABLE = OutboxRecord.__table__  # type: ignore[attr-defined]
_PENDING = (
    select(*(_TABLE.c[name] for name in ("id", "topic", "key", "value", "headers", "tag")))
    .where(_TABLE.c.published_at.is_(None))
    .order_by(_TABLE.c.id)
    .limit(bindparam("limit"))
)
_PENDING_LOCKED = _PENDING.with_for_update()
_MARK_PUBLISHED = (
    update(_TABLE)
    .where(_TABLE.c.id.in_(bindparam("ids", expanding=True)))
    .values(published_at=bindparam("at", type_=_TABLE.c.published_at.type))
)


async def pending(session: AsyncSession, *, limit: int, lock: bool = False) -> list[Pending]:
    """The oldest records not yet published, in the order they were written; with `lock`, locked until the
    caller's transaction ends (another relay's same query waits for them, then skips those it published)."""
    rows = await read_rows(session, _PENDING_LOCKED if lock else _PENDING, {"limit": limit})
    return [Pending(**row) for row in rows]


async def mark_published(session: AsyncSession, ids: list[int], *, at: datetime) -> None:
    if ids:
        await change_rows(session, _MARK_PUBLISHED, {"ids": ids, "at": at})


async def backlog(session: AsyncSession) -> int:
    query = select(func.count()).select_from(OutboxRecord).where(col(OutboxRecord.published_at).is_(None))
    return int((await session.exec(query)).one())


def headers_of(record: Unpublished) -> Headers:
    return [(k, v.encode()) for k, v in orjson.loads(record.headers)]


async def purge_published(session: AsyncSession, before: datetime, limit: int) -> int:
    """Records published before `before`: the broker has them; a record not yet published always stays."""
    return await delete_batch(session, OutboxRecord.id, col(OutboxRecord.published_at) < before, limit=limit)
