"""Annotated dependencies of the dispatcher's routes: the service, on-call workers and operators."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from maillage.core.crypto.tokens import Principal, Scope
from maillage.core.web.auth import require
from maillage.core.web.signin import session_or_bearer
from maillage.dispatcher.live import Worker
from maillage.dispatcher.services import Dispatcher


def _dispatcher(request: Request) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


def _served(request: Request) -> tuple[str, ...]:
    # Workers' tokens are issued by the agencies this dispatcher serves, and by no one else.
    return tuple(request.app.state.dispatcher.served)


def _operators(request: Request) -> str:
    issuer: str = request.app.state.dispatcher.network.operators.issuer
    return issuer


def worker_of(principal: Principal) -> Worker:
    return Worker(agency=principal.agency, id=principal.subject)


# A worker: by the on-call page's session cookie, or by a token of a served agency.
OnCall = Annotated[Principal, session_or_bearer(Scope.ALERTS_ACK, issuers=_served)]


def _on_call_worker(principal: OnCall) -> Worker:
    return worker_of(principal)


DispatcherDep = Annotated[Dispatcher, Depends(_dispatcher)]
OnCallWorker = Annotated[Worker, Depends(_on_call_worker)]
Operator = Annotated[Principal, require(Scope.MONITOR_READ, issuers=_operators)]
OncallManager = Annotated[Principal, require(Scope.ONCALL_MANAGE, issuers=_served)]
