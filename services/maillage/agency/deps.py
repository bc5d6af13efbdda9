"""Annotated dependencies of the agency API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Request

from maillage.agency.sending import AgencyContext
from maillage.core.crypto.tokens import Scope
from maillage.core.web.auth import require


async def _context(request: Request) -> AgencyContext:
    ctx: AgencyContext = request.app.state.context
    return ctx


Context = Annotated[AgencyContext, Depends(_context)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Repeat a request safely: the same key and body give the same result, once.",
    ),
]


def Allowed(scope: Scope) -> Any:
    """The caller's token is valid, for this agency, and carries `scope`."""
    return require(scope, issuers=lambda request: request.app.state.context.agency.id)
