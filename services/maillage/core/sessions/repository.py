"""Every query of the sign-in sessions' tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.sessions.models import SignInSession, UsedInvitation
from maillage.core.storage.repository import delete_batch


async def session_of(session: AsyncSession, session_id: str) -> SignInSession | None:
    return await session.get(SignInSession, session_id)


def add_session(session: AsyncSession, row: SignInSession) -> None:
    session.add(row)


async def invitation_used(session: AsyncSession, jti: str, *, expires_at: datetime) -> bool:
    """Record `jti` as used; False if it was already (a second sign-in with the same invitation), and the
    transaction is then left to be rolled back."""
    try:
        session.add(UsedInvitation(jti=jti, expires_at=expires_at))
        await session.flush()
    except IntegrityError:
        return False
    return True


async def rotate_session(session: AsyncSession, row: SignInSession, *, secret_sha256: str, at: datetime) -> bool:
    """Move the session to a new secret, if no one else did since `row` was read (compare-and-set)."""
    result = await session.exec(
        update(SignInSession)
        .where(col(SignInSession.id) == row.id, col(SignInSession.secret_sha256) == row.secret_sha256)
        .values(secret_sha256=secret_sha256, previous_sha256=row.secret_sha256, rotated_at=at)
    )
    return bool(result.rowcount)


async def revoke_sessions(
    session: AsyncSession, *, at: datetime, issuer: str, subject: str | None = None, session_id: str | None = None
) -> list[str]:
    """End the issuer's sessions (of one subject, or one session); the ids ended."""
    query = select(SignInSession.id).where(col(SignInSession.issuer) == issuer, col(SignInSession.revoked_at).is_(None))
    if subject is not None:
        query = query.where(col(SignInSession.subject) == subject)
    if session_id is not None:
        query = query.where(col(SignInSession.id) == session_id)
    ids = list((await session.exec(query)).all())
    if ids:
        await session.exec(update(SignInSession).where(col(SignInSession.id).in_(ids)).values(revoked_at=at))
    return ids


async def purge_ended_sessions(session: AsyncSession, before: datetime, limit: int) -> int:
    """Sessions that expired or were revoked before `before`: no cookie of theirs is taken any more."""
    ended = or_(col(SignInSession.expires_at) < before, col(SignInSession.revoked_at) < before)
    return await delete_batch(session, SignInSession.id, ended, limit=limit)


async def purge_used_invitations(session: AsyncSession, before: datetime, limit: int) -> int:
    """Invitations that expired before `before`: refused for their expiry, they need no record of their use."""
    return await delete_batch(session, UsedInvitation.jti, col(UsedInvitation.expires_at) < before, limit=limit)
