"""The routes of a page's sign-in session (core/sessions), and the dependency that takes a session cookie or a
bearer token: the on-call page at the dispatcher, the dashboard at the monitor."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from maillage.core.clock import as_utc
from maillage.core.crypto.tokens import Principal, Scope
from maillage.core.sessions.service import SignInSessions
from maillage.core.web.auth import BearerCredentials, authenticate
from maillage.core.web.problems import PROBLEM_JSON
from maillage.domain.errors import Forbidden, Unauthorized

PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "RFC 9457 problem"}


class SignIn(BaseModel):
    invitation: str = Field(
        min_length=1, max_length=4096, description="The one-time sign-in token you were sent (a link's code)."
    )


class SessionOut(BaseModel):
    """Who is signed in, until when: the cookie itself is never readable by the page."""

    issuer: str = Field(description="The agency (or the operators' issuer) that invited them.")
    subject: str
    scopes: list[str]
    expires_at: datetime = Field(description="The session's end (a shift): sign in again after it.")


def sessions_of(request: Request) -> SignInSessions:
    sessions: SignInSessions = request.app.state.signin_sessions
    return sessions


def session_router(*, tags: list[str | Enum]) -> APIRouter:
    """Sign in with an invitation, keep the session, sign out: `/v1/session`."""
    router = APIRouter(tags=tags, responses={400: PROBLEM, 401: PROBLEM, 413: PROBLEM, 415: PROBLEM, 422: PROBLEM})

    @router.post("/v1/session", status_code=201, summary="Sign in with your invitation: a session cookie")
    async def sign_in(body: SignIn, request: Request, response: Response) -> SessionOut:
        sessions = sessions_of(request)
        row, cookie = await sessions.sign_in(body.invitation)
        _keep(response, request, sessions.cookie, cookie, expires_at=as_utc(row.expires_at))
        return _out(row)

    @router.post("/v1/session/refresh", summary="Keep the session: its cookie's secret is replaced")
    async def refresh(request: Request, response: Response) -> SessionOut:
        sessions = sessions_of(request)
        found = await sessions.refresh(request.cookies.get(sessions.cookie))
        if found is None:
            raise Unauthorized("problem.unauthorized.signed-out")
        row, cookie = found
        if cookie is not None:
            _keep(response, request, sessions.cookie, cookie, expires_at=as_utc(row.expires_at))
        return _out(row)

    @router.delete("/v1/session", status_code=204, summary="Sign out: the session ends")
    async def sign_out(request: Request) -> Response:
        sessions = sessions_of(request)
        await sessions.sign_out(request.cookies.get(sessions.cookie))
        response = Response(status_code=204)
        response.delete_cookie(
            sessions.cookie, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
        )
        return response

    return router


def _out(row: Any) -> SessionOut:
    return SessionOut(issuer=row.issuer, subject=row.subject, scopes=row.scopes, expires_at=as_utc(row.expires_at))


def _keep(response: Response, request: Request, name: str, cookie: str, *, expires_at: datetime) -> None:
    """The session cookie: never readable by scripts, never sent by another site's page, TLS-only over TLS."""
    seconds = max(0, int((expires_at - datetime.now(UTC)).total_seconds()))
    response.set_cookie(
        name, cookie, max_age=seconds, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def session_or_bearer(scope: Scope, *, issuers: Callable[[Request], Collection[str]]) -> Any:
    """A FastAPI dependency: whom the page's session cookie signs in (with `scope`), or else a valid bearer token
    for this service, from one of `issuers`, carrying `scope`."""

    async def check(request: Request, credentials: BearerCredentials) -> Principal:
        if credentials is None:
            sessions = sessions_of(request)
            signed_in = await sessions.signed_in(request.cookies.get(sessions.cookie))
            if signed_in is not None:
                if scope not in signed_in.scopes:
                    raise Forbidden("problem.forbidden.session-scope", scope=scope.value)
                return signed_in
        token = credentials.credentials if credentials else None
        return authenticate(request, token, scope, owners=issuers(request))

    return Depends(check)
