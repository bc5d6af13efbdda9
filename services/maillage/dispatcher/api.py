"""The dispatcher's routes: the worker's page, live streams (WebSocket and SSE; their messages in streams.py),
acknowledgements, and the alerts operators must know went unanswered."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Request, WebSocket
from fastapi.responses import StreamingResponse

from maillage.core.web.http import add_page
from maillage.core.web.paging import Cursor, Limit, decode_cursor
from maillage.core.web.problems import PROBLEM_JSON
from maillage.core.web.signin import session_router, sessions_of
from maillage.dispatcher import contracts as c
from maillage.dispatcher import streams
from maillage.dispatcher.deps import DispatcherDep, OnCall, OncallManager, OnCallWorker, Operator

STATIC = FilePath(__file__).parent / "static"
PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "RFC 9457 problem"}
ERRORS = {401: PROBLEM, 403: PROBLEM, 404: PROBLEM, 409: PROBLEM, 422: PROBLEM}

router = APIRouter(responses=ERRORS)  # type: ignore[arg-type]
add_page(router, "/oncall", html=STATIC / "oncall.html")
router.include_router(session_router(tags=["on-call"]))


@router.get("/v1/me", tags=["on-call"], summary="Who this worker is and at which levels they are on call now")
async def me(worker: OnCallWorker, dispatcher: DispatcherDep) -> c.Hello:
    return dispatcher.hello(worker)


@router.get("/v1/alerts", tags=["on-call"], summary="Every alert still open for this worker")
async def open_alerts(worker: OnCallWorker, dispatcher: DispatcherDep) -> c.AlertList:
    return c.AlertList(items=await dispatcher.open_for(worker))


@router.get("/v1/alerts/unacknowledged", tags=["operators"], summary="Alerts every level let pass (metadata only)")
async def unacknowledged(
    _: Operator, dispatcher: DispatcherDep, cursor: Cursor = None, limit: Limit = 200
) -> c.UnacknowledgedPage:
    return await dispatcher.unacknowledged(after=decode_cursor(cursor), limit=limit)


@router.post("/v1/alerts/{alert_id}/ack", tags=["on-call"], summary="Acknowledge an alert: I take it in hand")
async def acknowledge(alert_id: UUID, worker: OnCallWorker, dispatcher: DispatcherDep) -> c.AlertView:
    return await dispatcher.acknowledge(worker, str(alert_id))


@router.get(
    "/v1/stream",
    tags=["on-call"],
    summary="Server-Sent Events: the open alerts, then every page",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, 429: PROBLEM},
)
async def stream(request: Request, principal: OnCall, dispatcher: DispatcherDep) -> StreamingResponse:
    return streams.sse(request, principal, dispatcher)


@router.delete(
    "/v1/workers/{worker}/sessions",
    tags=["on-call"],
    summary="End every session of one of your agency's workers (scope oncall:manage): their pages sign out",
)
async def end_sessions(
    worker: Annotated[str, Path(min_length=1, max_length=200)], manager: OncallManager, request: Request
) -> c.SessionsEnded:
    return c.SessionsEnded(ended=await sessions_of(request).revoke(manager.agency, subject=worker))


@router.websocket("/v1/ws")
async def socket(websocket: WebSocket) -> None:
    # Signed in by the conversation itself: a browser cannot set an Authorization header on a socket.
    await streams.converse(
        websocket,
        websocket.app.state.dispatcher,
        sign_in_seconds=websocket.app.state.sign_in_seconds,
        sessions=websocket.app.state.signin_sessions,
    )
