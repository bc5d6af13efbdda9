"""HTTP plumbing shared by every service: body size limit, health probes, problem handlers, web pages."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from maillage.core.auth import jwks
from maillage.core.problems import (
    PROBLEM_JSON,
    PROBLEM_TYPE_BASE,
    TITLES,
    NotFound,
    NotReady,
    install_problem_handlers,
)

# The web pages (the on-call page, the dashboard) load their script and stylesheet from their own service and
# nothing inline: injected markup could then neither run a script nor restyle the page.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
ASSET_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
# Never cached: a page and its assets change together, so a browser never pairs a new page with an old script.
_STATIC_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def page(path: Path) -> FileResponse:
    """An HTML page, under PAGE_CSP and never framed."""
    return FileResponse(path, media_type="text/html; charset=utf-8",
                        headers={**_STATIC_HEADERS, "Content-Security-Policy": PAGE_CSP, "X-Frame-Options": "DENY"})


def asset(folder: Path, name: str) -> FileResponse:
    """A page's stylesheet or script from `folder`; any other name is not found (and cannot climb out)."""
    wanted = folder / name
    if wanted.suffix not in ASSET_TYPES or wanted.parent != folder or not wanted.is_file():
        raise NotFound("No such file.")
    return FileResponse(wanted, media_type=ASSET_TYPES[wanted.suffix], headers=_STATIC_HEADERS)


class BodyLimit:
    """Refuses bodies over `max_bytes` with 413 before any handler reads them, declared length or not."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        received = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # FastAPI turns any error raised while it reads the body into its own 400; drop that answer.
            if not too_large:
                await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, limited_receive, guarded_send)
        if too_large:
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body = orjson.dumps({"type": PROBLEM_TYPE_BASE + "too-large", "title": TITLES["too-large"]["en"],
                             "status": 413, "detail": f"The limit is {self.max_bytes} bytes.",
                             "instance": scope.get("path", "")})
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", PROBLEM_JSON.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


ReadinessCheck = Callable[[], Awaitable[bool]]


def install_common(app: FastAPI, *, max_body_bytes: int, ready: ReadinessCheck | None = None) -> None:
    """Problem bodies, the body limit, and the routes every service has. Readiness is `ready`, or else
    the check the lifespan puts in `app.state.ready` once it has started (not ready before)."""
    if ready is None:
        async def ready() -> bool:
            check: ReadinessCheck | None = getattr(app.state, "ready", None)
            return bool(check and await check())

    install_problem_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    @app.get("/.well-known/jwks.json", tags=["keys"], summary="This service's public keys (JWKS)")
    async def jwks_document(request: Request) -> dict[str, list[dict[str, str]]]:
        trust = getattr(request.app.state, "trust", None)
        if trust is None:
            raise NotReady("The keys are not loaded yet.")
        # A service speaking for several agencies (the dispatcher) publishes the keys of each.
        return jwks(trust, owners=getattr(request.app.state, "key_owners", None))

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics (metadata only)",
             response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Connected to Kafka and the database",
             responses={503: {"description": "Not ready"}})
    async def readyz() -> dict[str, str]:
        if not await ready():
            raise NotReady("Kafka or the database is not reachable yet.")
        return {"status": "ready"}
