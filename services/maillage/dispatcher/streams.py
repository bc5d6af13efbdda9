"""The live streams' conversation with a worker, over a WebSocket or Server-Sent Events.

Socket messages, server → worker (JSON text frames):
  {"type": "hello", "worker", "agency", "levels": [..]}       once signed in
  {"type": "snapshot", "alerts": [alert, ...]}                 every alert still open for the worker
  {"type": "alert", "alert": alert}                            the worker is paged (new alert or escalation)
  {"type": "update", "alert": alert}                           an alert the worker sees changed (grouped, escalated)
  {"type": "acknowledged", "alert_id", "acknowledged_at", "level", "by_you"}
  {"type": "acked", "alert": alert}                            the answer to the worker's own "ack"
  {"type": "error", "status", "code", "title", "detail"}      a refused message; the socket stays open, but for
                                                               a sign-in too late (408, closed 1008), too many
                                                               attempts (401, closed 1008) or too many streams of
                                                               the worker's or agency's (429, closed 1013)
  {"type": "pong"}
worker → server: {"type": "auth", "token"} (when no Authorization header), {"type": "ack", "alert_id"},
{"type": "ping"}. The SSE stream (`GET /v1/stream`) sends the same messages, each as an event named by its type;
over the streams cap it is refused with a 429 problem.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import orjson
from fastapi import Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as AsgiScope
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from maillage.core.crypto.tokens import Principal, Scope
from maillage.core.i18n import LANGUAGES, negotiate, translate
from maillage.core.sessions.service import SignInSessions
from maillage.core.web.auth import authenticate
from maillage.core.web.problems import title
from maillage.dispatcher.contracts import AlertMessage
from maillage.dispatcher.deps import worker_of
from maillage.dispatcher.live import Connection, Frame, Message, Worker
from maillage.dispatcher.services import Dispatcher
from maillage.domain.errors import MaillageError, TooManyStreams

KEEPALIVE_SECONDS = 15.0
# A socket whose client has not read this much of what it was sent is too slow: dropped, it reconnects and gets
# a snapshot (as when its queue of QUEUE_SIZE messages is full).
MAX_UNSENT_BYTES = 1 << 20
SERVER_SEND = "maillage.server_send"  # the scope key `KeepSocketSend` keeps the server's send under
LOGIN_ATTEMPTS = 5
AUTH_EXAMPLE = '{"type": "auth", "token": "…"}'


def sse(request: Request, principal: Principal, dispatcher: Dispatcher) -> StreamingResponse:
    """A worker's Server-Sent Events stream: who they are, every open alert, then every change."""
    worker = worker_of(principal)
    dispatcher.live.admit(worker)  # over the caps: a 429 problem, while a status can still say so
    language = negotiate(request.headers.get("accept-language"))

    async def events() -> AsyncIterator[bytes]:
        # Connected only while the stream runs, so a stream that never starts leaves no phantom worker.
        try:
            connection = dispatcher.live.connect(worker, kid=principal.kid)
        except TooManyStreams as exc:  # another stream of this worker's began since the check
            yield _sse(_refusal(exc, language))
            return
        dispatcher.worker_joined()
        try:
            yield _sse(dispatcher.hello(worker).message())
            yield _sse((await dispatcher.snapshot(worker)).message())
            async for frame in _messages(connection, expires_at=principal.expires_at, language=language):
                yield _sse(frame) if frame else b": keep-alive\n\n"
        finally:
            dispatcher.live.disconnect(connection)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


def _sse(message: Message | Frame) -> bytes:
    frame = message if isinstance(message, Frame) else Frame.of(message)
    return b"event: " + frame.type.encode() + b"\ndata: " + frame.text.encode() + b"\n\n"


async def _messages(connection: Connection, *, expires_at: float, language: str) -> AsyncIterator[Frame | None]:
    """The connection's frames; None every KEEPALIVE_SECONDS of silence; an error when the token expires."""
    while True:
        left = expires_at - time.time()
        if left <= 0:
            yield Frame.of(_error(401, "unauthorized", "problem.unauthorized.token-expired", language))
            return
        # No asyncio.wait_for here: it wraps every wait in a new task, and an alert pushed to hundreds of
        # sockets wakes hundreds of these loops at once. A message already waiting needs no timer at all.
        try:
            message = connection.queue.get_nowait()
            await asyncio.sleep(0)  # still let the other connections' tasks run between two messages
        except asyncio.QueueEmpty:
            try:
                async with asyncio.timeout(min(KEEPALIVE_SECONDS, left)):
                    message = await connection.queue.get()
            except TimeoutError:
                yield None
                continue
        if message is None:  # dropped: the client was too slow; it will reconnect and get a snapshot
            if connection.revoked:
                yield Frame.of(_error(401, "unauthorized", "problem.unauthorized.key-retired", language))
            return
        yield message


def _error(status: int, code: str, key: str, language: str, **fields: Any) -> Message:
    """An error frame: its title and detail (the message `key`, filled in with `fields`) in `language`."""
    return {
        "type": "error",
        "status": status,
        "code": code,
        "title": title(code, language),
        "detail": translate(language, key, **fields),
    }


def _refusal(exc: MaillageError, language: str, **extra: Any) -> Message:
    return {**_error(exc.status, exc.code, exc.key, language, **exc.fields), **exc.extensions, **extra}


# --- WebSocket ----------------------------------------------------------------------------------


async def converse(
    websocket: WebSocket, dispatcher: Dispatcher, *, sign_in_seconds: float, sessions: SignInSessions | None = None
) -> None:
    """A worker's WebSocket: signed in (by the on-call page's session cookie, the handshake's bearer token, or an
    `auth` message), sent who they are and every open alert, then every change; their acknowledgements and
    pings answered on the same socket."""
    language = negotiate(websocket.headers.get("accept-language"))
    scheme, _, bearer = websocket.headers.get("authorization", "").partition(" ")
    by_session = None
    if sessions is not None and not bearer:
        by_session = await sessions.signed_in(websocket.cookies.get(sessions.cookie))
    await websocket.accept()
    with contextlib.suppress(WebSocketDisconnect):
        principal = by_session or await _sign_in(
            websocket,
            dispatcher,
            bearer if scheme.lower() == "bearer" else None,
            language,
            seconds=sign_in_seconds,
        )
        if principal is None:
            return
        worker = worker_of(principal)
        try:
            # Before the snapshot is read: no page falls between the two.
            connection = dispatcher.live.connect(worker, kid=principal.kid)
        except TooManyStreams as exc:
            # 1013, try again later: the worker's page reconnects, and gets in once another stream closes.
            await _close_with(websocket, _refusal(exc, language), code=1013)
            return
        dispatcher.worker_joined()
        pump: asyncio.Task[None] | None = None
        try:
            snapshot = (await dispatcher.snapshot(worker)).message()
            # Sent before anything queued meanwhile, so a later change always comes after the snapshot.
            await websocket.send_text(orjson.dumps(dispatcher.hello(worker).message()).decode())
            await websocket.send_text(orjson.dumps(snapshot).decode())
            pump = asyncio.create_task(_pump(websocket, connection, expires_at=principal.expires_at, language=language))
            while True:
                raw = await _receive(websocket)
                if raw is None:
                    return
                connection.send(await _answer(dispatcher, worker, raw, language))
        finally:
            dispatcher.live.disconnect(connection)
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                    await pump


async def _receive(websocket: WebSocket) -> str | bytes | None:
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return None
    return message.get("text") if message.get("text") is not None else message.get("bytes", b"")


async def _sign_in(
    websocket: WebSocket, dispatcher: Dispatcher, token: str | None, language: str, *, seconds: float
) -> Principal | None:
    """With the handshake's Authorization header, or an `auth` message within `seconds` of connecting (a socket
    that never signs in holds a connection for nothing); a refusal lets the worker try again meanwhile."""
    owners = tuple(dispatcher.served)
    deadline = time.monotonic() + seconds
    for _ in range(LOGIN_ATTEMPTS):
        if token is None:
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    raw = await _receive(websocket)
            except TimeoutError:
                # 408, not 401: the token may be good and the network slow; the worker's page reconnects.
                await _close_with(
                    websocket,
                    _error(408, "request-timeout", "problem.request-timeout.sign-in", language, seconds=f"{seconds:g}"),
                    code=1008,
                )
                return None
            if raw is None:
                return None
            message = _parse(raw)
            if isinstance(message, dict) and message.get("lang") in LANGUAGES:
                language = str(message["lang"])  # a browser cannot set Accept-Language on a socket
            if not isinstance(message, dict) or message.get("type") != "auth":
                await websocket.send_json(
                    _error(401, "unauthorized", "problem.unauthorized.sign-in-first", language, example=AUTH_EXAMPLE)
                )
                continue
            token = str(message.get("token") or "")
        try:
            return authenticate(websocket, token, Scope.ALERTS_ACK, owners=owners)
        except MaillageError as exc:
            await websocket.send_json(_refusal(exc, language))
            token = None
    await _close_with(
        websocket, _error(401, "unauthorized", "problem.unauthorized.too-many-attempts", language), code=1008
    )
    return None


async def _close_with(websocket: WebSocket, error: Message, *, code: int) -> None:
    await websocket.send_json(error)
    await websocket.close(code=code)


async def _pump(websocket: WebSocket, connection: Connection, *, expires_at: float, language: str) -> None:
    """What was queued before (the hello and snapshot went first), through the socket; then, where uvicorn's
    protocol lets frames be written whole, every later message straight to the socket (`SocketWire`), this task
    left only to close it when the token expires or the connection is dropped."""
    wire = SocketWire.of(websocket)
    if wire is not None and connection.queue.empty():
        connection.wire = wire
    async for frame in _messages(connection, expires_at=expires_at, language=language):
        if frame is not None:
            await websocket.send_text(frame.text)
        if wire is not None and connection.wire is None and connection.queue.empty():
            connection.wire = wire  # in order: nothing is waiting in the queue any more
    # 4401: sign in again (the token expired, or its key was retired); 1013: too slow, reconnect.
    await websocket.close(code=4401 if connection.revoked or expires_at <= time.time() else 1013)


class SocketWire:
    """A worker's socket under uvicorn's sans-I/O websockets protocol (the dispatcher's): each frame written whole
    to its transport, as the protocol itself writes its pings and its close. Only whole, final data frames are
    written this way, so the protocol's own state is unchanged; once it has sent its close, nothing more is."""

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self.protocol = protocol

    @classmethod
    def of(cls, websocket: WebSocket) -> SocketWire | None:
        """None when the socket is not served by that protocol (another server, an in-process client): its
        task writes, through the ASGI send."""
        protocol = getattr(websocket.scope.get(SERVER_SEND), "__self__", None)
        return cls(protocol) if isinstance(protocol, WebSocketsSansIOProtocol) else None

    def write(self, data: bytes) -> bool:
        protocol = self.protocol
        transport = protocol.transport
        if protocol.close_sent or transport.is_closing() or transport.get_write_buffer_size() > MAX_UNSENT_BYTES:
            return False
        transport.write(data)
        return True


class KeepSocketSend:
    """ASGI middleware: a WebSocket's `send` as the server gave it, kept in its scope for `SocketWire` (the
    framework's own layers wrap it on the way in)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[SERVER_SEND] = send
        await self.app(scope, receive, send)


def _parse(raw: str | bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


async def _answer(dispatcher: Dispatcher, worker: Worker, raw: str | bytes, language: str) -> Message:
    message = _parse(raw)
    if not isinstance(message, dict):
        return _error(400, "malformed-json", "problem.malformed-json.not-an-object", language)
    kind = message.get("type")
    if kind == "ping":
        return {"type": "pong"}
    if kind == "auth":
        return _error(409, "conflict", "problem.conflict.signed-in-already", language)
    if kind != "ack":
        return _error(422, "validation", "problem.validation.unknown-message-type", language)
    try:
        alert_id = str(UUID(str(message.get("alert_id"))))
    except ValueError:
        return _error(422, "validation", "problem.validation.alert-id", language)
    try:
        return AlertMessage(type="acked", alert=await dispatcher.acknowledge(worker, alert_id)).message()
    except MaillageError as exc:
        return _refusal(exc, language, alert_id=alert_id)
