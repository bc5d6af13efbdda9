"""A busy path's short reads, and its relay's mark, go straight to SQLite on the event loop's connection (`plain`):
they must find what the session finds — the same rows, each value read back as SQLAlchemy reads it (a JSON column
decoded, bytes as bytes) — see what their transaction wrote before them, and change the same rows. On PostgreSQL,
where the session runs them, the same."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.agency import models as agency_models
from maillage.agency import repository as agency_repository
from maillage.core.outbox import repository as outbox
from maillage.core.storage.db import make_engine, session_factory, unit_of_work
from maillage.core.storage.migrations import Schema, upgrade
from maillage.core.storage.plain import on_loop_sqlite
from maillage.core.storage.repository import insert_rows
from maillage.gateway import models as gateway_models
from maillage.gateway import repository as gateway_repository

pytestmark = [pytest.mark.integration, pytest.mark.postgresql]

AT = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
Databases = Callable[[str], str | None]


@asynccontextmanager
async def database(
    databases: Databases, tmp_path: Path, service: str, schema: Schema
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(databases(service) or f"sqlite+aiosqlite:///{tmp_path / service}.db")
    await upgrade(engine, schema)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def both_ways(sessions: async_sessionmaker[AsyncSession], read: Callable[[AsyncSession], Any]) -> list[Any]:
    """What `read` finds in a unit of work (on SQLite, the loop's connection: the plain way), then in a session of
    the service's other engine (on SQLite, aiosqlite's threads: the session's way); and whether the first went
    plainly."""
    async with unit_of_work(sessions) as session:
        plain = await read(session)
        on_loop = await on_loop_sqlite(session) is not None
    async with sessions() as session:
        assert await on_loop_sqlite(session) is None, "the other engine is the session's way"
        through_session = await read(session)
    return [plain, through_session, on_loop]


async def test_the_gateway_finds_the_events_it_decided_as_the_session_reads_them(
    databases: Databases, tmp_path: Path
) -> None:
    decided = [
        {"event_id": "e-1", "digest": "d1", "partition": 2, "offset": 7, "disclosures": [], "decided_at": AT},
        {
            "event_id": "e-2",
            "digest": "d2",
            "partition": 0,
            "offset": 12,
            "disclosures": [{"recipient": "cpas-seraing", "categories": ["referral_reason"], "note": None}],
            "decided_at": AT,
        },
    ]
    async with database(databases, tmp_path, "gateway", gateway_models.SCHEMA) as sessions:
        async with unit_of_work(sessions) as session:
            await insert_rows(session, gateway_models.ProcessedEvent, decided)

        async def read(session: AsyncSession) -> list[dict[str, Any]]:
            rows = await gateway_repository.processed(session, ["e-2", "e-3", "e-1"])
            return sorted((dict(row) for row in rows), key=lambda row: str(row["event_id"]))

        plain, through_session, on_loop = await both_ways(sessions, read)

    assert on_loop is (databases("gateway") is None)
    expected = [{k: v for k, v in row.items() if k != "decided_at"} for row in decided]
    assert plain == through_session == expected


async def test_the_relay_reads_and_marks_the_same_records_either_way(databases: Databases, tmp_path: Path) -> None:
    async with database(databases, tmp_path, "agency", agency_models.SCHEMA) as sessions:
        async with unit_of_work(sessions) as session:
            for n in range(4):
                headers = [("ce_id", f"e-{n}".encode()), ("content-type", b"application/json")]
                row = outbox.new_row(
                    event_id=f"e-{n}", topic="t", key=b"k", value=b"\x00\xff" * n, headers=headers, at=AT
                )
                await outbox.add(session, row | {"tag": f"tag-{n}" if n % 2 else None})

        async def read(session: AsyncSession) -> list[Any]:
            return await outbox.pending(session, limit=3)

        plain, through_session, on_loop = await both_ways(sessions, read)
        assert plain == through_session
        assert [outbox.headers_of(r)[0][1] for r in plain] == [b"e-0", b"e-1", b"e-2"], "the oldest first"
        assert [(r.value, r.tag) for r in plain] == [(b"", None), (b"\x00\xff", "tag-1"), (b"\x00\xff" * 2, None)]

        async with unit_of_work(sessions) as session:
            await outbox.mark_published(session, [r.id for r in plain[:2]], at=AT)
        async with unit_of_work(sessions) as session:
            left = await outbox.pending(session, limit=10)
            backlog = await outbox.backlog(session)

    assert on_loop is (databases("agency") is None)
    assert [outbox.headers_of(r)[0][1] for r in left] == [b"e-2", b"e-3"] and backlog == 2


async def test_a_read_sees_what_its_transaction_holds_unwritten(databases: Databases, tmp_path: Path) -> None:
    """An inbox item added to the session (not flushed) is known to the same transaction's next read, as the
    session's autoflush makes it; a status line too."""
    async with database(databases, tmp_path, "agency", agency_models.SCHEMA) as sessions:
        async with unit_of_work(sessions) as session:
            await insert_rows(
                session,
                agency_models.RecipientStatus,
                [{"event_id": "e-1", "recipient": "cpas-seraing", "outcome": "delivered", "decided_at": AT}],
            )
            session.add(
                agency_models.InboxItem(
                    event_id="e-2",
                    type="referral.created",
                    source_agency="refuge-liege",
                    subject_ref="s",
                    subject_role="victim",
                    legal_basis="consent",
                    purpose="referral",
                    sent_at=AT,
                    received_at=AT,
                    data={"a": [1]},
                )
            )
            session.add(
                agency_models.RecipientStatus(event_id="e-1", recipient="police-liege", outcome="denied", decided_at=AT)
            )
            inbox = await agency_repository.inbox_known(session, ["e-1", "e-2"])
            statuses = await agency_repository.statuses_known(session, ["e-1", "e-2"])
            on_loop = await on_loop_sqlite(session) is not None
        async with sessions() as session:
            inbox_after = await agency_repository.inbox_known(session, ["e-1", "e-2"])
            statuses_after = await agency_repository.statuses_known(session, ["e-1"])

    assert on_loop is (databases("agency") is None)
    assert inbox == inbox_after == {"e-2"}
    assert statuses == statuses_after == {("e-1", "cpas-seraing"), ("e-1", "police-liege")}
