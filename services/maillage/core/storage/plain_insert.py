"""New rows handed straight to SQLite, in the statement and with the values SQLAlchemy would have given it.

On the event loop's SQLite connection (`loop_sqlite`), a one-row INSERT through the session costs some 190 µs of
CPU on the 2-core machines the bench runs on, against ~70 µs for the same statement handed to the `sqlite3` cursor:
the rest is SQLAlchemy's way there — the session's and the connection's execution steps, an execution context and
a result for a statement that returns none, and seven switches between greenlets, each DBAPI call an awaitable
handed to the event loop's side and back (README "A lean pipeline", thirteenth round). A referral's sender writes
four such rows in its request, the gateway three per batch, the recipient two or three.

So, on that connection alone, the INSERT is compiled once per table and set of columns by SQLAlchemy itself, for
that database's dialect, and each row's values go through the same bind processors (a date as SQLAlchemy stores it
in SQLite, a JSON column through the engine's serializer, an enum as it stores one): the rows stored are the ones the
session would have stored (`tests/integration/test_new_rows.py` compares both, value by value). Anywhere else —
PostgreSQL, aiosqlite's threads — and for a table whose left-out columns take defaults computed in Python, the
session runs the statement as before.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, Insert
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.storage.loop_sqlite import LoopConnection

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class PlainInsert:
    """An INSERT as SQLAlchemy compiled it for one dialect, and what it does to each value on the way."""

    sql: str
    names: tuple[str, ...]  # the statement's parameters, in order
    processors: tuple[Processor, ...]

    def values(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(
            value if process is None else process(value)
            for value, process in zip((row[name] for name in self.names), self.processors, strict=True)
        )


@functools.lru_cache(maxsize=256)
def plain_insert(statement: Insert, columns: tuple[str, ...], dialect: Dialect) -> PlainInsert | None:
    """The INSERT of `columns` compiled for `dialect`; None when SQLAlchemy would add values of its own (a
    left-out column's default computed in Python) or name its parameters otherwise."""
    compiled = statement.compile(dialect=dialect, column_keys=list(columns))
    names = tuple(compiled.positiontup or ())
    if compiled.insert_prefetch or set(names) != set(columns):
        return None
    processors: list[Processor] = []
    for name in names:
        process = compiled._bind_processors.get(name)
        if process is not None and not callable(process):
            return None  # a tuple's processors, one per element: no column of a row has them
        processors.append(process)
    return PlainInsert(sql=str(compiled), names=names, processors=tuple(processors))


async def on_loop_sqlite(session: AsyncSession) -> tuple[sqlite3.Connection, Dialect] | None:
    """The `sqlite3` connection the session's transaction runs on, when it is the event loop's own (`loop_sqlite`),
    with its dialect; None for any other database or driver."""
    connection = await session.connection()
    driver = connection.sync_connection.connection.driver_connection if connection.sync_connection else None
    if not isinstance(driver, LoopConnection) or driver._connection is None:
        return None
    return driver._connection, connection.dialect


async def insert_plainly(session: AsyncSession, statement: Insert, rows: Sequence[Mapping[str, Any]]) -> bool:
    """`rows` (each with the same columns) inserted by `statement` (a table's plain INSERT) on the loop's SQLite
    connection, in the session's transaction; False, with nothing done, when that is not where the session runs or
    the statement cannot go there as it is."""
    found = await on_loop_sqlite(session)
    if found is None:
        return False
    sqlite, dialect = found
    plain = plain_insert(statement, tuple(rows[0]), dialect)
    if plain is None:
        return False
    sqlite.executemany(plain.sql, [plain.values(row) for row in rows])
    return True
