"""Annotated dependencies of the agency API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from maillage.agency.services import AgencyContext


def _context(request: Request) -> AgencyContext:
    ctx: AgencyContext = request.app.state.context
    return ctx


Context = Annotated[AgencyContext, Depends(_context)]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=200,
           description="Repeat a request safely: the same key and body give the same result, once."),
]
