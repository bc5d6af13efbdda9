"""A SQLite database's short units of work run on the event loop's thread, its long reads on aiosqlite's threads:
every write queued on the writer lock, none through the reading engine, the loop never held by a long read."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, event, func, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.pool import QueuePool
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.storage.db import make_engine, session_factory, short_read, unit_of_work, writer

pytestmark = pytest.mark.integration

NOTES = Table("notes", MetaData(), Column("id", Integer, primary_key=True), Column("body", String, nullable=False))


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'agency.db'}")
    for each in (engine, writer(engine)):
        event.listen(each.sync_engine, "connect", _with_thread_function)
    async with writer(engine).begin() as conn:
        await conn.run_sync(NOTES.metadata.create_all)
    yield engine
    await engine.dispose()


def _with_thread_function(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.create_function("thread_ident", 0, threading.get_ident)


async def _thread_of(session: AsyncSession) -> int:
    return int((await session.exec(text("SELECT thread_ident()"))).scalar_one())  # type: ignore[call-overload]


async def _notes(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as session:
        return list((await session.exec(select(NOTES.c.body).order_by(NOTES.c.id))).scalars())  # type: ignore[call-overload]


async def test_a_unit_of_work_and_a_short_read_run_on_the_loops_thread_a_plain_session_elsewhere(
    engine: AsyncEngine,
) -> None:
    sessions = session_factory(engine)
    loop_thread = threading.get_ident()

    async with unit_of_work(sessions) as session:
        assert await _thread_of(session) == loop_thread
        await session.exec(insert(NOTES).values(body="first"))
    async with short_read(sessions) as session:
        assert await _thread_of(session) == loop_thread
    async with sessions() as session:
        assert await _thread_of(session) != loop_thread

    assert await _notes(sessions) == ["first"]


async def test_a_write_outside_a_unit_of_work_is_refused_and_leaves_nothing(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)

    async with sessions() as session:
        with pytest.raises(OperationalError, match="readonly"):
            await session.exec(insert(NOTES).values(body="not through the writer lock"))

    assert await _notes(sessions) == []


async def test_a_failed_unit_of_work_is_rolled_back_whole(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with unit_of_work(sessions) as session:
        await session.exec(insert(NOTES).values(id=1, body="kept"))

    with pytest.raises(IntegrityError):
        async with unit_of_work(sessions) as session:
            await session.exec(insert(NOTES).values(id=2, body="rolled back with the rest"))
            await session.exec(insert(NOTES).values(id=1, body="a key already taken"))

    assert await _notes(sessions) == ["kept"]


async def test_writers_queue_and_all_commit_while_a_long_read_leaves_the_loop_free(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    ticks: list[float] = []

    async def heartbeat() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.005)

    async def long_read() -> tuple[float, float]:
        # Some seconds of SQLite work on one statement: a statistics query over a large table, say.
        count = text(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) SELECT count(*) FROM n"
        )
        async with sessions() as session:
            began = time.monotonic()
            assert (await session.exec(count)).scalar_one() == 3_000_000  # type: ignore[call-overload]
            return began, time.monotonic()

    async def write(n: int) -> None:
        async with unit_of_work(sessions) as session:
            await session.exec(insert(NOTES).values(body=f"note {n}"))
            await asyncio.sleep(0)  # another writer's turn comes, and waits on the lock, not in SQLite

    beating = asyncio.create_task(heartbeat())
    try:
        reading = asyncio.create_task(long_read())
        await asyncio.gather(*(write(n) for n in range(50)))
        began, ended = await reading
    finally:
        beating.cancel()

    during = [t for t in ticks if began <= t <= ended]
    assert ended - began > 0.2
    # The loop ran throughout the read: no gap between its beats near the read's length.
    assert len(during) >= 5
    assert max(b - a for a, b in itertools.pairwise(during)) < (ended - began) / 2
    async with sessions() as session:
        assert (await session.exec(select(func.count()).select_from(NOTES))).scalar_one() == 50  # type: ignore[call-overload]


async def test_the_loop_engine_is_disposed_with_the_engine(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with unit_of_work(sessions) as session:
        await session.exec(insert(NOTES).values(body="one"))
    pool = writer(engine).sync_engine.pool
    assert isinstance(pool, QueuePool)
    assert pool.checkedin() == 1

    await engine.dispose()

    assert pool.checkedin() == 0
