"""Annotated dependencies of the dispatcher's routes: the service, on-call workers and operators."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from maillage.core.crypto.tokens import Principal, Scope
from maillage.core.web.auth import BearerCredentials, authenticate, require
from maillage.dispatcher.live import Worker
from maillage.dispatcher.services import Dispatcher
from maillage.dispatcher.sessions import COOKIE, WorkerSessions


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


def _sessions(request: Request) -> WorkerSessions:
    sessions: WorkerSessions = request.app.state.worker_sessions
    return sessions


async def _on_call(request: Request, credentials: BearerCredentials) -> Principal:
    """A worker: by the session cookie of the on-call page, or by a bearer token of a served agency."""
    if credentials is None:
        signed_in = await _sessions(request).signed_in(request.cookies.get(COOKIE))
        if signed_in is not None:
            return signed_in
    token = credentials.credentials if credentials else None
    return authenticate(request, token, Scope.ALERTS_ACK, owners=_served(request))


OnCall = Annotated[Principal, Depends(_on_call)]
Sessions = Annotated[WorkerSessions, Depends(_sessions)]


def _on_call_worker(principal: OnCall) -> Worker:
    return worker_of(principal)


DispatcherDep = Annotated[Dispatcher, Depends(_dispatcher)]
OnCallWorker = Annotated[Worker, Depends(_on_call_worker)]
Operator = Annotated[Principal, require(Scope.MONITOR_READ, issuers=_operators)]
OncallManager = Annotated[Principal, require(Scope.ONCALL_MANAGE, issuers=_served)]
