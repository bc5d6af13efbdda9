"""Signed in on a page for a while without ever handling a token (on-call workers, operators).

The person's issuer (their agency, or the operators' issuer) makes an invitation — a one-time token of its own,
minutes long, for this service (`maillage workers invite`, `maillage operators invite`) — which the page
exchanges once for a session: a cookie (HttpOnly, SameSite=Strict, Secure over TLS) holding a random secret, of
which only a hash is kept. The page refreshes it every few minutes, and each refresh replaces the secret: a stolen
cookie played after the page moved on is a reuse, and ends the session. A session never outlives its lifetime
(a shift), and the issuer ends its people's sessions whenever it wants: their streams close at once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.clock import Clock, SystemClock, as_utc
from maillage.core.crypto.secrets import new_secret
from maillage.core.crypto.tokens import Principal, Scope, TokenError, claimed_issuer, verify_token
from maillage.core.crypto.trust import PublicTrust, Trust
from maillage.core.sessions import repository
from maillage.core.sessions.models import SignInSession
from maillage.core.storage.db import unit_of_work
from maillage.domain.errors import Unauthorized

log = logging.getLogger(__name__)

# What a stream opened by a session is known by, in place of a token key id: ending the session closes it.
SESSION_KID_PREFIX = "session:"
# Two tabs of one browser refreshing at once: the one a moment late still holds the secret just replaced.
ROTATION_GRACE = timedelta(seconds=10)


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def session_kid(session_id: str) -> str:
    return SESSION_KID_PREFIX + session_id


@dataclass
class SignInSessions:
    """One service's sessions: opened with invitations of `issuers` for `audience` carrying `required`, each
    granted the invitation's scopes among `granted`, for `lifetime`; the page's cookie is named `cookie`."""

    sessions: async_sessionmaker[AsyncSession]
    trust: Trust | PublicTrust | None
    audience: str
    issuers: Collection[str]
    required: Scope
    granted: frozenset[Scope]
    lifetime: timedelta
    cookie: str
    on_end: Callable[[set[str]], object] = lambda _kids: None  # close the streams of these session kids
    clock: Clock = field(default_factory=SystemClock)

    async def sign_in(self, invitation: str) -> tuple[SignInSession, str]:
        """A new session for whom an invitation names, and its cookie; raises Unauthorized saying why."""
        principal = self._invitation(invitation)
        now = self.clock.now()
        async with unit_of_work(self.sessions) as session:
            expires = datetime.fromtimestamp(principal.expires_at, tz=now.tzinfo)
            if principal.token_id is None or not await repository.invitation_used(
                session, principal.token_id, expires_at=expires
            ):
                raise Unauthorized("problem.unauthorized.invitation-used")
            secret = new_secret()
            row = SignInSession(
                id=str(uuid.uuid4()),
                issuer=principal.agency,
                subject=principal.subject,
                scopes=sorted(s.value for s in principal.scopes & self.granted),
                secret_sha256=_sha256(secret),
                rotated_at=now,
                expires_at=now + self.lifetime,
            )
            repository.add_session(session, row)
        log.info("signed in", extra={"issuer": row.issuer, "session": row.id})
        return row, f"{row.id}.{secret}"

    def _invitation(self, invitation: str) -> Principal:
        if self.trust is None:
            raise Unauthorized("problem.unauthorized.no-sign-in")
        try:
            principal = verify_token(invitation, keys=self.trust.public, audience=self.audience)
        except TokenError:
            self.trust.refresh(owner=claimed_issuer(invitation), wait=False)
            try:
                principal = verify_token(invitation, keys=self.trust.public, audience=self.audience)
            except TokenError as exc:
                raise Unauthorized("problem.unauthorized.invitation-refused", reason=str(exc)) from None
        if principal.agency not in self.issuers or self.required not in principal.scopes:
            raise Unauthorized("problem.unauthorized.invitation-elsewhere")
        if principal.token_id is None:
            raise Unauthorized("problem.unauthorized.token-not-invitation")
        return principal

    async def signed_in(self, cookie: str | None) -> Principal | None:
        """Who a session cookie signs in, or None."""
        found = await self._current(cookie)
        return None if found is None else _principal(found[0])

    async def refresh(self, cookie: str | None) -> tuple[SignInSession, str | None] | None:
        """The session with a new secret (None: a tab just refreshed it, keep the cookie), or None if the cookie
        signs nothing in."""
        found = await self._current(cookie)
        if found is None:
            return None
        row, fresh = found
        if not fresh:
            return row, None
        secret = new_secret()
        async with unit_of_work(self.sessions) as session:
            if not await repository.rotate_session(session, row, secret_sha256=_sha256(secret), at=self.clock.now()):
                return row, None  # another tab's refresh got there first: its cookie is the browser's now
        return row, f"{row.id}.{secret}"

    async def sign_out(self, cookie: str | None) -> None:
        found = await self._current(cookie)
        if found is not None:
            await self.revoke(found[0].issuer, session_id=found[0].id)

    async def revoke(self, issuer: str, *, subject: str | None = None, session_id: str | None = None) -> int:
        """End sessions of the issuer (all of one subject's, or one); their streams close at once."""
        async with unit_of_work(self.sessions) as session:
            ended = await repository.revoke_sessions(
                session, at=self.clock.now(), issuer=issuer, subject=subject, session_id=session_id
            )
        if ended:
            self.on_end({session_kid(i) for i in ended})
            log.info("sessions ended", extra={"issuer": issuer, "sessions": len(ended)})
        return len(ended)

    async def _current(self, cookie: str | None) -> tuple[SignInSession, bool] | None:
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
            log.warning("session cookie reused after its rotation: session ended", extra={"session": row.id})
            await self.revoke(row.issuer, session_id=row.id)
        return None


def _principal(row: SignInSession) -> Principal:
    return Principal(
        agency=row.issuer,
        subject=row.subject,
        scopes=frozenset(Scope(s) for s in row.scopes),
        kid=session_kid(row.id),
        expires_at=as_utc(row.expires_at).timestamp(),
    )
