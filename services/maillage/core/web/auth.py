"""Bearer-token checks shared by every service's API: who is calling, for which agency, with which scopes."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import replace
from typing import Annotated, Any

from fastapi import Depends, Request, WebSocket
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from maillage.core.crypto.keys import KeyUse
from maillage.core.crypto.tokens import (
    ACTING_STAFF,
    ACTING_STAFF_HEADER,
    Principal,
    Scope,
    TokenError,
    claimed_issuer,
    staff_ref,
    verify_token,
)
from maillage.core.crypto.trust import PublicTrust, Trust
from maillage.domain.errors import ActingStaffRequired, Forbidden, InvalidRequest, Unauthorized

_bearer = HTTPBearer(auto_error=False, description="A Maillage token: `maillage token --agency ID --scope ...`")


class TokenCache:
    """Tokens already verified, until they expire: a partner system reuses one token for many calls,
    and an Ed25519 check per request was a large part of a request's cost. A retired key id voids them."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.entries: dict[str, tuple[Principal, float]] = {}

    def get(self, token: str, trust: Trust | PublicTrust) -> Principal | None:
        entry = self.entries.get(token)
        if entry is None:
            return None
        principal, expires = entry
        # A retired key id voids its tokens at once, cached or not (trust.public is reloaded periodically).
        if time.time() >= expires or trust.public.get(principal.kid, use=KeyUse.TOKENS) is None:
            del self.entries[token]
            return None
        return principal

    def put(self, token: str, principal: Principal) -> None:
        if len(self.entries) >= self.size:
            self.entries.clear()
        self.entries[token] = (principal, principal.expires_at)


BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _verify(trust: Trust | PublicTrust, token: str, cache: TokenCache, *, audience: str) -> Principal:
    cached = cache.get(token, trust)
    if cached is not None:
        return cached
    principal = _verify_uncached(trust, token, audience=audience)
    cache.put(token, principal)
    return principal


def _verify_uncached(trust: Trust | PublicTrust, token: str, *, audience: str) -> Principal:
    try:
        return verify_token(token, keys=trust.public, audience=audience)
    except TokenError:
        # A key added by a rotation since this service started; never waited for (tokens are the client's).
        trust.refresh(owner=claimed_issuer(token), wait=False)
        try:
            return verify_token(token, keys=trust.public, audience=audience)
        except TokenError as exc:
            raise Unauthorized("problem.unauthorized.token-refused", reason=str(exc)) from None


def _cache_of(request: Request | WebSocket) -> TokenCache:
    cache: TokenCache | None = getattr(request.app.state, "token_cache", None)
    if cache is None:
        cache = request.app.state.token_cache = TokenCache()
    return cache


def authenticate(
    request: Request | WebSocket, token: str | None, scope: Scope, *, owners: Collection[str]
) -> Principal:
    """A valid token for this service (`app.state.audience`), issued by one of `owners`, carrying `scope`."""
    if not token:
        raise Unauthorized("problem.unauthorized.token-required")
    principal = _verify(request.app.state.trust, token, _cache_of(request), audience=request.app.state.audience)
    if principal.token_id is not None:
        raise Unauthorized("problem.unauthorized.invitation-not-bearer")
    if principal.agency not in owners:
        raise Forbidden("problem.forbidden.foreign-issuer")
    if scope not in principal.scopes:
        raise Forbidden("problem.forbidden.scope-missing", scope=scope.value)
    return _acting(principal, request.headers.get(ACTING_STAFF_HEADER))


def _acting(principal: Principal, stated: str | None) -> Principal:
    """A system's token with the professional it acts for in this request (its own pseudonymous reference)."""
    if stated is None or not principal.names_a_system:
        return principal
    if not ACTING_STAFF.fullmatch(stated):
        raise InvalidRequest("problem.validation.acting-staff-format", header=ACTING_STAFF_HEADER)
    return replace(principal, acting=stated)


def person_ref(principal: Principal) -> str:
    """The pseudonymous reference of the professional behind a request where a person is meant (who obtained
    a consent, raised an alert, reviewed one): a system's token must say who, per request."""
    if principal.names_a_system and principal.acting is None:
        raise ActingStaffRequired("problem.acting-staff-required.system-token", header=ACTING_STAFF_HEADER)
    return staff_ref(principal)


def require(scope: Scope, *, issuers: Callable[[Request], str | Collection[str]]) -> Any:
    """A FastAPI dependency: a valid token for this service, from one of `issuers`, carrying `scope`."""

    async def check(request: Request, credentials: BearerCredentials) -> Principal:
        owners = issuers(request)
        return authenticate(
            request,
            credentials.credentials if credentials else None,
            scope,
            owners=(owners,) if isinstance(owners, str) else owners,
        )

    return Depends(check)


def jwks(trust: Trust | PublicTrust, *, owners: Collection[str] | None = None) -> dict[str, list[dict[str, str]]]:
    """This service's own public keys (token, signing, sealing), every valid key id included."""
    mine = set(owners) if owners is not None else {trust.owner}
    return {"keys": [k.to_jwk() for k in trust.public.by_kid.values() if k.owner in mine]}


__all__ = ["Principal", "Scope", "authenticate", "jwks", "person_ref", "require"]
