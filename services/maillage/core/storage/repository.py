"""What every service asks of its own database: SQLite's settings on each connection, and whether it answers."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Connection, Insert, Table, delete, insert, text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.storage.plain import insert_plainly, run_plainly, written_through

# Any constant both processes agree on: pg_advisory_xact_lock takes a 64-bit key.
_MIGRATIONS_LOCK = 0x6D61696C6C616765  # "maillage"


async def answers(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        await conn.execute(text("select 1"))
    return True


# Turning a new database to WAL takes its exclusive lock. Two processes opening it at once (two gateways started
# together on one file) each hold the read lock the other must lose: SQLite answers one of them "locked" at once,
# without its busy handler, and that process would fail to start. It asks again, up to this long.
WAL_SWITCH_SECONDS = 5.0


def configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while the consumer writes; NORMAL keeps commits durable in WAL mode.
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    # A row deleted is overwritten with zeros, not left in a free page: an erased person leaves no bytes behind.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    deadline = time.monotonic() + WAL_SWITCH_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def refuse_writes(dbapi_connection: Any, _record: Any) -> None:
    """A SQLite connection that reads only: a statement that would change the database fails."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def take_migrations_lock(connection: Connection) -> None:
    """Until this transaction ends, no other process migrates this database: two processes of one service
    starting together (several gateways on one PostgreSQL database) would both create the tables."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATIONS_LOCK})
    elif connection.dialect.name == "sqlite":
        # The driver begins a transaction at the first write only, after the schema was read; take the write
        # lock now, waiting for the other process's migration (busy_timeout) instead of failing on its tables.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


async def insert_rows(session: AsyncSession, model: type[SQLModel], rows: list[dict[str, Any]]) -> None:
    """New rows written at once by a plain INSERT (several rows: one executemany), a field left out taking its
    default (SQLModel gives its column the field's): for a busy path's rows, which its transaction does not read
    back as objects. `session.add` costs several times more per row: it builds the object attribute by attribute
    through SQLAlchemy's instruments, then the flush sorts and tracks it (README "A lean pipeline", seventh
    round)."""
    await insert_table_rows(session, model.__table__, rows)  # type: ignore[attr-defined]


async def insert_table_rows(session: AsyncSession, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """`insert_rows` for a table: straight to SQLite on the event loop's connection (`plain`), else through
    the session."""
    if rows and not await insert_plainly(session, insert_into(table), rows):
        await session.exec(insert_into(table), params=rows)


async def read_rows(session: AsyncSession, statement: Any, params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The rows a busy path's short read finds (`statement` built once, its values in `params`), each a column →
    value mapping: straight from SQLite on the event loop's connection (`plain`), else through the session."""
    done = await run_plainly(session, statement, params)
    if done is not None:
        return list(done[0])
    await written_through(session)
    result = await (await session.connection()).execute(statement, dict(params))
    return [dict(row) for row in result.mappings()]


async def change_rows(session: AsyncSession, statement: Any, params: Mapping[str, Any]) -> int:
    """How many rows a busy path's UPDATE or DELETE (built once, its values in `params`) changed: straight to
    SQLite on the event loop's connection (`plain`), else through the session."""
    done = await run_plainly(session, statement, params)
    if done is not None:
        return done[1]
    await written_through(session)
    return int((await (await session.connection()).execute(statement, dict(params))).rowcount or 0)


@cache
def insert_into(table: Table) -> Insert:
    """The plain INSERT of `table`, built once: on a busy path, building it again for each batch cost more than
    SQLite's running it (README "A lean pipeline", eleventh round)."""
    return insert(table)


async def delete_batch(session: AsyncSession, key: Any, *where: ColumnElement[bool], limit: int) -> int:
    """Delete at most `limit` rows matching `where`, chosen by their primary `key`; how many went. A subquery
    with a LIMIT, since neither SQLite (as built by default) nor PostgreSQL takes one on a DELETE."""
    table = key.class_
    chosen = select(key).where(*where).limit(limit).scalar_subquery()
    result = await session.exec(delete(table).where(col(key).in_(chosen)))
    return int(result.rowcount or 0)


async def update_batch(
    session: AsyncSession, key: Any, *where: ColumnElement[bool], values: dict[str, Any], limit: int
) -> int:
    """Set `values` on at most `limit` rows matching `where` (which the update must make stop matching)."""
    table: type[SQLModel] = key.class_
    chosen = select(key).where(*where).limit(limit).scalar_subquery()
    result = await session.exec(update(table).where(col(key).in_(chosen)).values(**values))
    return int(result.rowcount or 0)
