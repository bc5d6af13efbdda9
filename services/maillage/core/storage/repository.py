"""What every service asks of its own database: SQLite's settings on each connection, and whether it answers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def answers(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        await conn.execute(text("select 1"))
    return True


def configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while the consumer writes; NORMAL keeps commits durable in WAL mode.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
