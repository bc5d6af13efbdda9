"""Every query of the registered clients' table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.clients.models import ClientRow


async def get(session: AsyncSession, client_id: str) -> ClientRow | None:
    return await session.get(ClientRow, client_id)


def add(session: AsyncSession, row: ClientRow) -> None:
    session.add(row)


async def listed(session: AsyncSession) -> Sequence[ClientRow]:
    return (await session.exec(select(ClientRow).order_by(col(ClientRow.created_at), col(ClientRow.client_id)))).all()


async def revoke(session: AsyncSession, client_id: str, *, at: datetime) -> bool:
    """True if the client was registered and not revoked yet."""
    result = await session.exec(
        update(ClientRow)
        .where(col(ClientRow.client_id) == client_id, col(ClientRow.revoked_at).is_(None))
        .values(revoked_at=at)
    )
    return bool(result.rowcount)
