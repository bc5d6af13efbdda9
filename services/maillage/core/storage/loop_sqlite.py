"""SQLite on the event loop's own thread, for the short units of work: aiosqlite's interface without its thread.

aiosqlite runs every call (each statement, each cursor, each fetch, each commit) on a thread of its own and hands
the result back through the event loop: two thread switches and a loop wake-up per call, some 0.1-0.3 ms on the
2-core machines `maillage bench` runs on, where the statements themselves take a few µs (a local file in WAL mode,
committed without fsync). A referral's unit of work makes some twenty such calls in each service it crosses. This
connection makes the same calls directly, on the caller's thread: SQLAlchemy's aiosqlite dialect is given it
through `async_creator`.

What that asks of the callers (`maillage.core.storage.db` holds to it): a call must never wait for a lock held by
a coroutine of the same process, since that coroutine cannot run while the loop's thread waits. So every write of
a service goes through `unit_of_work`, which queues writers on an asyncio lock before they touch SQLite; readers
in WAL mode never wait for a writer. And a call must be short: the long reads (statistics, exports, the audit
walk) stay on aiosqlite's threads, where the loop runs on meanwhile. Another process writing the same file (a
`maillage` command run beside a service) is waited for as SQLite's busy handler waits, the loop's thread with it:
the length of that command's transaction, a few milliseconds.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any


class LoopCursor:
    """An aiosqlite cursor's coroutines, each run at once on the caller's thread."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> LoopCursor:
        if parameters is None:
            self._cursor.execute(sql)
        else:
            self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> LoopCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _CursorOpening:
    """What aiosqlite's `Connection.cursor()` returns: awaited, or entered, it is the cursor."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def __await__(self) -> Any:
        return self.__aenter__().__await__()

    async def __aenter__(self) -> LoopCursor:
        return LoopCursor(self._connection.cursor())

    async def __aexit__(self, *exc: object) -> None:
        return None


class _AtOnce:
    """Stands for aiosqlite's queue to its thread, on which SQLAlchemy's isolation-level setter puts a call: the
    call is made at once and its future given the result."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:  # the setter awaits the future, which raises it there
            future.set_exception(exc)


class LoopConnection:
    """An aiosqlite connection's interface over a `sqlite3` connection used on the caller's thread."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        self._tx = _AtOnce()
        self._open = True

    @property
    def _connection(self) -> sqlite3.Connection | None:  # SQLAlchemy checks it before a commit or a rollback
        return self._conn if self._open else None

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> _CursorOpening:
        return _CursorOpening(self._conn)

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> LoopCursor:
        return await LoopCursor(self._conn.cursor()).execute(sql, parameters)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """SQLAlchemy's forced close, of a connection given up on: no thread runs elsewhere to be stopped."""
        if self._open:
            self._open = False
            self._conn.close()


def connector(path: str) -> Callable[[], Any]:
    """`create_async_engine`'s `async_creator` for the database file at `path`."""

    async def connect() -> LoopConnection:
        # check_same_thread off, as SQLAlchemy's own pysqlite pool sets it: the garbage collector may close a
        # connection from another thread; it is used by one coroutine at a time, on the loop's thread.
        return LoopConnection(sqlite3.connect(path, check_same_thread=False))

    return connect
