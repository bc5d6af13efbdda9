"""Database engines and sessions (sqlmodel over SQLAlchemy async): SQLite by default."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from typing import Any
from weakref import WeakKeyDictionary

import orjson
from sqlalchemy import JSON, Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import Field
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.storage import loop_sqlite
from maillage.core.storage.repository import configure_sqlite, refuse_writes

POOL_TIMEOUT_SECONDS = 10.0

# A SQLite database's second engine, whose connections run on the event loop's thread (`loop_sqlite`): the one
# `unit_of_work` and `short_read` use. The engine `make_engine` returns keeps aiosqlite's threads, for the reads
# that may take long.
_on_loop: WeakKeyDictionary[Engine, AsyncEngine] = WeakKeyDictionary()


def make_engine(url: str) -> AsyncEngine:
    """The engine of a service's database; on SQLite, with its loop-thread twin for the units of work."""
    engine = _engine(url)
    path = engine.url.database
    if engine.dialect.name == "sqlite" and path and path != ":memory:" and not path.startswith("file:"):
        on_loop = _on_loop[engine.sync_engine] = _engine(url, async_creator=loop_sqlite.connector(path))
        # Disposed with the engine it serves, in the same greenlet (where SQLAlchemy can await its closes).
        event.listen(engine.sync_engine, "engine_disposed", lambda _engine: on_loop.sync_engine.dispose())
        # Every write goes through the loop-thread engine, under the writer lock: a write through this one would
        # make the loop's thread wait for a transaction that needs the loop to end. SQLite refuses it.
        event.listen(engine.sync_engine, "connect", refuse_writes)
    return engine


def writer(engine: AsyncEngine) -> AsyncEngine:
    """The engine that writes to `engine`'s database outside a unit of work (migrations, a test's own rows):
    SQLite's loop-thread engine, the one that may write."""
    return _on_loop.get(engine.sync_engine, engine)


def _engine(url: str, **kwargs: Any) -> AsyncEngine:
    # A PostgreSQL server restarted leaves the pool's connections dead: each is tested as it is taken out, so
    # the service recovers by itself instead of failing one request per dead connection (or crashing a consumer).
    # A request waits at most POOL_TIMEOUT_SECONDS for a connection, then answers the 503 problem: under a load
    # the service cannot keep up with, a partner hears "retry later" within its own timeout (SQLAlchemy's 30 s
    # is a common client's whole budget), rather than nothing.
    engine = create_async_engine(
        url,
        pool_pre_ping=not url.startswith("sqlite"),
        pool_timeout=POOL_TIMEOUT_SECONDS,
        json_serializer=_json_text,
        json_deserializer=orjson.loads,
        **kwargs,
    )
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", configure_sqlite)
    return engine


def _json_text(value: Any) -> str:
    # JSON columns through orjson rather than the standard library's encoder, several times faster: the gateway
    # stores each decision's disclosures as JSON (non-string keys made strings, as `json.dumps` does).
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


# SQLite has one writer at a time. When two transactions of one process write at once, the second one
# either sleeps in SQLite's busy handler (1, 2, 5, ... 100 ms steps: hundreds of ms under load) or, if it
# read first, fails at once with "database is locked". Queueing them on an asyncio lock per engine instead
# makes them wait exactly as long as the writer before them, no more.
_sqlite_writers: WeakKeyDictionary[Engine, asyncio.Lock] = WeakKeyDictionary()


def _writer_lock(factory: async_sessionmaker[AsyncSession]) -> asyncio.Lock | None:
    bind = factory.kw.get("bind")
    if not isinstance(bind, AsyncEngine) or bind.dialect.name != "sqlite":
        return None
    return _sqlite_writers.setdefault(bind.sync_engine, asyncio.Lock())


def _loop_engine(factory: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    """The session's keywords that put it on the database's loop-thread engine, if it has one."""
    bind = factory.kw.get("bind")
    on_loop = _on_loop.get(bind.sync_engine) if isinstance(bind, AsyncEngine) else None
    return {} if on_loop is None else {"bind": on_loop}


def locks_rows(factory: async_sessionmaker[AsyncSession]) -> bool:
    """Whether the database locks rows for a transaction (PostgreSQL), so that several processes can share it:
    SQLite has one writer at a time, and its `FOR UPDATE` is a plain read."""
    bind = factory.kw.get("bind")
    return isinstance(bind, AsyncEngine) and bind.dialect.name != "sqlite"


@asynccontextmanager
async def unit_of_work(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: commits when the block ends normally, rolls back otherwise. Every write of a service goes
    through one, and each is short: on SQLite, they queue on the database's writer lock and run on the event
    loop's thread (see `loop_sqlite`)."""
    lock, on_loop = _writer_lock(factory), _loop_engine(factory)
    if not on_loop:
        async with lock or nullcontext(), factory() as session, session.begin():
            yield session
        return
    async with lock or nullcontext():
        session = factory(**on_loop)
        try:
            async with session.begin():
                yield session
        finally:
            # Closed here rather than by the session's own `async with`, which closes in a task of its own under
            # `asyncio.shield` — a turn of the event loop, and ~70 µs of CPU, in every unit of work — so that a
            # cancellation cannot cut its close short. On the loop's thread the close never waits (`loop_sqlite`):
            # no cancellation can come in the middle of it.
            await session.close()


@asynccontextmanager
async def short_read(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for a few rows read by key on a busy path (the relay's next batch, say), which writes nothing:
    on SQLite it runs on the event loop's thread, without the lock (in WAL mode a reader waits for no writer).
    A read that may take long (statistics, an export, a walk) takes `factory()` itself."""
    async with factory(**_loop_engine(factory)) as session:
        yield session


def json_field(**kwargs: Any) -> Any:
    """A sqlmodel field stored as a JSON column (lists of categories, maps of removals...). A column type, not a
    column: each table that declares (or inherits) the field gets a column of its own."""
    return Field(sa_type=JSON, nullable=False, **kwargs)
