"""A busy path's statements handed straight to SQLite, as SQLAlchemy compiled them and with the values it would have
given and read back.

On the event loop's SQLite connection (`loop_sqlite`), a one-row INSERT through the session costs some 190 µs of
CPU on the 2-core machines the bench runs on, against ~70 µs for the same statement handed to the `sqlite3` cursor;
a short SELECT through the session some 600 µs with the ORM's way of reading, against ~100 µs (README "A lean
pipeline", thirteenth and fourteenth rounds). The rest is SQLAlchemy's way there — the session's and the
connection's execution steps, an execution context and a result, a greenlet switch per DBAPI call. A referral's
sender writes four such rows in its request, the gateway three per batch after reading which events it decided
before, the recipient two or three after reading which it stored before.

So, on that connection alone, a statement is compiled once by SQLAlchemy itself, for that database's dialect; the
values given go through the same bind processors (a date as SQLAlchemy stores it in SQLite, a JSON column through
the engine's serializer, an enum as it stores one), and the values read through the same result processors: the
rows stored and read are the session's (`tests/integration/test_new_rows.py`, `test_plain_reads.py` compare both,
value by value). Anywhere else — PostgreSQL, aiosqlite's threads — and for a statement SQLAlchemy would add to
(a left-out column's default computed in Python), the session runs it as before.
"""

from __future__ import annotations

import functools
import operator
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ClauseElement, Dialect, Insert
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.storage.loop_sqlite import LoopConnection

Processor = Callable[[Any], Any] | None
_FOUND = "maillage.loop_sqlite"  # the session's `info` key under which `on_loop_sqlite` keeps what it found


@dataclass(frozen=True)
class PlainInsert:
    """An INSERT as SQLAlchemy compiled it for one dialect, and what it does to each value on the way."""

    sql: str
    names: tuple[str, ...]  # the statement's parameters, in order
    processors: tuple[Processor, ...]
    # A row's values taken at once, and only the columns with a processor passed through one: most have none, and
    # a gateway's batch writes some fifty values per event.
    _taken: Callable[[Mapping[str, Any]], Any] = field(init=False, repr=False, compare=False)
    _processed: tuple[tuple[int, Callable[[Any], Any]], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_taken", operator.itemgetter(*self.names))
        processed = tuple((i, p) for i, p in enumerate(self.processors) if p is not None)
        object.__setattr__(self, "_processed", processed)

    def values(self, row: Mapping[str, Any]) -> Sequence[Any]:
        taken = self._taken(row)
        values = [taken] if len(self.names) == 1 else list(taken)  # itemgetter of one name gives the value alone
        for i, process in self._processed:
            values[i] = process(values[i])
        return values


@functools.lru_cache(maxsize=256)
def plain_insert(statement: Insert, columns: tuple[str, ...], dialect: Dialect) -> PlainInsert | None:
    """The INSERT of `columns` compiled for `dialect`; None when SQLAlchemy would add values of its own (a
    left-out column's default computed in Python) or name its parameters otherwise."""
    compiled = statement.compile(dialect=dialect, column_keys=list(columns))
    names = tuple(compiled.positiontup or ())
    if not names or compiled.insert_prefetch or set(names) != set(columns):
        return None
    processors: list[Processor] = []
    for name in names:
        process = compiled._bind_processors.get(name)
        if process is not None and not callable(process):
            return None  # a tuple's processors, one per element: no column of a row has them
        processors.append(process)
    return PlainInsert(sql=str(compiled), names=names, processors=tuple(processors))


@dataclass(frozen=True)
class PlainQuery:
    """A SELECT, UPDATE or DELETE as SQLAlchemy compiled it for one dialect: its parameters, each list of values
    (an expanding IN) spread into as many places, and what it does to each value given and read."""

    sql: str
    names: tuple[str, ...]  # the statement's parameters, in order
    processors: tuple[Processor, ...]
    expanding: frozenset[str]
    fixed: Mapping[str, Any]  # the values the statement holds itself (a literal compared with)
    columns: tuple[str, ...]  # the rows' keys, as the session's result names them
    results: tuple[Processor, ...]

    def bound(self, params: Mapping[str, Any]) -> tuple[str, list[Any]] | None:
        """The statement and its values; None for an empty list, which SQLAlchemy renders otherwise."""
        sql, values = self.sql, list[Any]()
        for name, process in zip(self.names, self.processors, strict=True):
            value = params[name] if name in params else self.fixed[name]
            if name in self.expanding:
                items = list(value)
                if not items:
                    return None
                sql = sql.replace(f"__[POSTCOMPILE_{name}]", ", ".join("?" * len(items)), 1)
                values.extend(items if process is None else map(process, items))
            else:
                values.append(value if process is None else process(value))
        return sql, values

    def rows(self, found: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
        results = self.results
        if not any(results):
            return [dict(zip(self.columns, row, strict=True)) for row in found]
        return [
            {
                column: value if process is None else process(value)
                for column, value, process in zip(self.columns, row, results, strict=True)
            }
            for row in found
        ]


@functools.lru_cache(maxsize=256)
def plain_query(statement: ClauseElement, dialect: Dialect) -> PlainQuery | None:
    """`statement` compiled for `dialect` (qmark parameters, SQLite's); None when it cannot go to the driver as
    it is: a parameter rendered otherwise than in place (a literal), a tuple's, or a column read by a processor
    that needs the cursor's description."""
    compiled: Any = statement.compile(dialect=dialect)
    if dialect.paramstyle != "qmark" or compiled.literal_execute_params:
        return None
    names = tuple(compiled.positiontup or ())
    expanding = frozenset(name for name in names if compiled.binds[name].expanding)
    processors: list[Processor] = []
    for name in names:
        if name in expanding:  # SQLAlchemy processes each value of the list as the parameter's type
            process = compiled.binds[name].type._cached_bind_processor(dialect)
        else:
            process = compiled._bind_processors.get(name)
        if process is not None and not callable(process):
            return None
        processors.append(process)
    entries = compiled._result_columns or []
    results = tuple(entry.type._cached_result_processor(dialect, None) for entry in entries)
    return PlainQuery(
        sql=compiled.string,
        names=names,
        processors=tuple(processors),
        expanding=expanding,
        fixed={name: compiled.binds[name].effective_value for name in names if name not in expanding},
        columns=tuple(entry.keyname for entry in entries),
        results=results,
    )


async def on_loop_sqlite(session: AsyncSession) -> tuple[sqlite3.Connection, Dialect] | None:
    """The `sqlite3` connection the session's transaction runs on, when it is the event loop's own (`loop_sqlite`),
    with its dialect; None for any other database or driver. Kept for the transaction: asking the session for its
    connection is itself a round through SQLAlchemy's greenlet (~50 µs), and one unit of work asks several times."""
    transaction = session.sync_session.get_transaction()
    kept = session.info.get(_FOUND)
    if transaction is not None and kept is not None and kept[0] is transaction:
        found: tuple[sqlite3.Connection, Dialect] | None = kept[1]
        return found
    connection = await session.connection()
    driver = connection.sync_connection.connection.driver_connection if connection.sync_connection else None
    if not isinstance(driver, LoopConnection) or driver._connection is None:
        found = None
    else:
        found = driver._connection, connection.dialect
    session.info[_FOUND] = (session.sync_session.get_transaction(), found)
    return found


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


async def written_through(session: AsyncSession) -> None:
    """What the session holds unwritten (objects added, changed, deleted) written to its transaction, as its
    autoflush would before a query of the ORM's: a statement run on the connection itself sees it then."""
    if session.sync_session.autoflush and (session.new or session.dirty or session.deleted):
        await session.flush()


async def run_plainly(
    session: AsyncSession, statement: ClauseElement, params: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], int] | None:
    """`statement` run on the loop's SQLite connection, in the session's transaction, after what the session
    holds unwritten (as its autoflush would): the rows it read, each a column → value mapping, and how many it
    changed; None, with nothing run, when that is not where the session runs or it cannot go there as it is."""
    found = await on_loop_sqlite(session)
    if found is None:
        return None
    sqlite, dialect = found
    plain = plain_query(statement, dialect)
    bound = plain.bound(params) if plain is not None else None
    if plain is None or bound is None:
        return None
    await written_through(session)
    cursor = sqlite.execute(*bound)
    try:
        return plain.rows(cursor.fetchall()), cursor.rowcount
    finally:
        cursor.close()
