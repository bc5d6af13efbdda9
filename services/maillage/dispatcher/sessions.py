"""On-call workers signed in for a whole shift without ever handling a token.

The worker's agency issues an invitation — a one-time token of its own (`maillage workers invite`), minutes
long, for this dispatcher — which the on-call page exchanges once for a session: a cookie (HttpOnly,
SameSite=Strict, Secure over TLS) holding a random secret, of which only a hash is kept. The page refreshes it
every few minutes, and each refresh replaces the secret: a stolen cookie played after the worker's page moved
on is a reuse, and ends the session. A session never outlives its shift (`MAILLAGE_ONCALL_SHIFT_HOURS`), and the
agency ends its workers' sessions whenever it wants (`maillage workers revoke`): their streams close at once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.clock import Clock, SystemClock, as_utc
from maillage.core.crypto.secrets import new_secret
from maillage.core.crypto.tokens import DISPATCHER_AUDIENCE, Principal, Scope, TokenError, claimed_issuer, verify_token
from maillage.core.crypto.trust import Trust
from maillage.dispatcher import repository
from maillage.dispatcher.live import SESSION_KID_PREFIX, Live
from maillage.dispatcher.models import WorkerSession
from maillage.domain.errors import Unauthorized

log = logging.getLogger(__name__)

COOKIE = "maillage_oncall"
# Two tabs of one browser refreshing at once: the one a moment late still holds the secret just replaced.
ROTATION_GRACE = timedelta(seconds=10)


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class WorkerSessions:
    sessions: async_sessionmaker[AsyncSession]
    served: Collection[str]
    trust: Trust | None  # the served agencies' public keys (any served agency's trust holds them all)
    live: Live
    shift: timedelta
    clock: Clock = field(default_factory=SystemClock)

    async def sign_in(self, invitation: str) -> tuple[WorkerSession, str]:
        """A new session for the worker an invitation names; raises Unauthorized (never says more than why)."""
        principal = self._invitation(invitation)
        now = self.clock.now()
        async with self.sessions() as session:
            expires = datetime.fromtimestamp(principal.expires_at, tz=now.tzinfo)
            if principal.token_id is None or not await repository.invitation_used(
                session, principal.token_id, expires_at=expires
            ):
                raise Unauthorized("This invitation was used already: ask your agency for another.")
            secret = new_secret()
            row = WorkerSession(
                id=str(uuid.uuid4()),
                agency_id=principal.agency,
                worker=principal.subject,
                secret_sha256=_sha256(secret),
                rotated_at=now,
                expires_at=now + self.shift,
            )
            await repository.add_session(session, row)
        log.info("on-call worker signed in", extra={"agency": row.agency_id, "session": row.id})
        return row, f"{row.id}.{secret}"

    def _invitation(self, invitation: str) -> Principal:
        if self.trust is None:
            raise Unauthorized("This dispatcher serves no agency.")
        try:
            principal = verify_token(invitation, keys=self.trust.public, audience=DISPATCHER_AUDIENCE)
        except TokenError:
            self.trust.refresh(owner=claimed_issuer(invitation), wait=False)
            try:
                principal = verify_token(invitation, keys=self.trust.public, audience=DISPATCHER_AUDIENCE)
            except TokenError as exc:
                raise Unauthorized(f"The invitation is not acceptable ({exc}).") from None
        if principal.agency not in self.served or Scope.ALERTS_ACK not in principal.scopes:
            raise Unauthorized("The invitation is not for this dispatcher's on-call workers.")
        if principal.token_id is None:
            raise Unauthorized("A token is not an invitation: ask your agency for a sign-in link.")
        return principal

    async def signed_in(self, cookie: str | None) -> Principal | None:
        """The worker a session cookie signs in, or None."""
        found = await self._current(cookie)
        return None if found is None else _principal(found[0])

    async def refresh(self, cookie: str | None) -> tuple[WorkerSession, str | None] | None:
        """The session with a new secret (None: a tab just refreshed it, keep the cookie), or None if the cookie
        signs nothing in."""
        found = await self._current(cookie)
        if found is None:
            return None
        row, fresh = found
        if not fresh:
            return row, None
        secret = new_secret()
        async with self.sessions() as session:
            if not await repository.rotate_session(session, row, secret_sha256=_sha256(secret), at=self.clock.now()):
                return row, None  # another tab's refresh got there first: its cookie is the browser's now
        return row, f"{row.id}.{secret}"

    async def sign_out(self, cookie: str | None) -> None:
        found = await self._current(cookie)
        if found is not None:
            await self.revoke(found[0].agency_id, session_id=found[0].id)

    async def revoke(self, agency: str, *, worker: str | None = None, session_id: str | None = None) -> int:
        """End sessions of the agency (all of one worker's, or one); their streams close at once."""
        async with self.sessions() as session:
            ended = await repository.revoke_sessions(
                session, at=self.clock.now(), agency=agency, worker=worker, session_id=session_id
            )
        kids = {SESSION_KID_PREFIX + i for i in ended}
        self.live.revoke(lambda kid: kid not in kids)
        if ended:
            log.info("on-call sessions ended", extra={"agency": agency, "sessions": len(ended)})
        return len(ended)

    async def _current(self, cookie: str | None) -> tuple[WorkerSession, bool] | None:
        """The session and whether `cookie` holds its current secret (False: the one just replaced)."""
        session_id, _, secret = (cookie or "").partition(".")
        if not session_id or not secret or len(cookie or "") > 200:
            return None
        async with self.sessions() as session:
            row = await repository.session_of(session, session_id)
        now = self.clock.now()
        if row is None or row.revoked_at is not None or as_utc(row.expires_at) <= now:
            return None
        digest = _sha256(secret)
        if hmac.compare_digest(digest, row.secret_sha256):
            return row, True
        if row.previous_sha256 is not None and hmac.compare_digest(digest, row.previous_sha256):
            if now - as_utc(row.rotated_at) <= ROTATION_GRACE:
                return row, False
            # A secret already replaced, played again later: someone else holds a copy of the cookie.
            log.warning("on-call session cookie reused after its rotation: session ended", extra={"session": row.id})
            await self.revoke(row.agency_id, session_id=row.id)
        return None


def _principal(row: WorkerSession) -> Principal:
    return Principal(
        agency=row.agency_id,
        subject=row.worker,
        scopes=frozenset({Scope.ALERTS_ACK}),
        kid=SESSION_KID_PREFIX + row.id,
        expires_at=as_utc(row.expires_at).timestamp(),
    )
