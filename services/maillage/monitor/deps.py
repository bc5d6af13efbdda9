"""Annotated dependencies of the monitor's API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from maillage.core.crypto.tokens import Principal, Scope
from maillage.core.web.signin import session_or_bearer
from maillage.monitor.services import MonitorContext


def _context(request: Request) -> MonitorContext:
    ctx: MonitorContext = request.app.state.monitor
    return ctx


def _operators(request: Request) -> tuple[str]:
    issuer: str = request.app.state.monitor.network.operators.issuer
    return (issuer,)


Context = Annotated[MonitorContext, Depends(_context)]
# Operators' tokens come from the operators' issuer only: an agency's token never carries their powers.
# By the dashboard's session cookie (an operator invited by the operators' issuer), or a bearer token of theirs.
Reader = Annotated[Principal, session_or_bearer(Scope.MONITOR_READ, issuers=_operators)]
Actor = Annotated[Principal, session_or_bearer(Scope.MONITOR_ACT, issuers=_operators)]
