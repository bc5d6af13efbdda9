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

from maillage.core.storage.repository import configure_sqlite

POOL_TIMEOUT_SECONDS = 10.0


def make_engine(url: str) -> AsyncEngine:
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


def locks_rows(factory: async_sessionmaker[AsyncSession]) -> bool:
    """Whether the database locks rows for a transaction (PostgreSQL), so that several processes can share it:
    SQLite has one writer at a time, and its `FOR UPDATE` is a plain read."""
    bind = factory.kw.get("bind")
    return isinstance(bind, AsyncEngine) and bind.dialect.name != "sqlite"


@asynccontextmanager
async def unit_of_work(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: commits when the block ends normally, rolls back otherwise."""
    lock = _writer_lock(factory)
    async with lock or nullcontext(), factory() as session, session.begin():
        yield session


def json_field(**kwargs: Any) -> Any:
    """A sqlmodel field stored as a JSON column (lists of categories, maps of removals...). A column type, not a
    column: each table that declares (or inherits) the field gets a column of its own."""
    return Field(sa_type=JSON, nullable=False, **kwargs)
