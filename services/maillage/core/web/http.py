"""HTTP plumbing shared by every service: body size limit, health probes, problem handlers, web pages."""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from string import Template

import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from maillage.core.i18n import negotiate, translate
from maillage.core.web.auth import jwks
from maillage.core.web.problems import (
    PROBLEM_JSON,
    PROBLEM_TYPE_BASE,
    install_problem_handlers,
    problem,
    temporarily_unavailable,
    title,
)
from maillage.domain.errors import NotFound, NotReady, Unauthorized

log = logging.getLogger(__name__)

# The web pages (the on-call page, the dashboard) load their script and stylesheet from their own service and
# nothing inline: injected markup could then neither run a script nor restyle the page.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
ASSET_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
# A page's messages in every language: data its script fetches, never run.
DATA_TYPES = {".json": "application/json"}
# What every page shares (its frame page.html, common.js, common.css, the shared messages), served by each service
# after the files of its own static folder.
SHARED_STATIC = Path(__file__).parent / "static"
# Never cached: a page and its assets change together, so a browser never pairs a new page with an old script.
_STATIC_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def page(path: Path) -> HTMLResponse:
    """The page whose own markup is `path` (`<name>.html`) in the frame every page shares, which loads
    `<name>.css` and `<name>.js`; under PAGE_CSP and never framed."""
    frame = Template((SHARED_STATIC / "page.html").read_text(encoding="utf-8"))
    html = frame.substitute(page=path.stem, main=path.read_text(encoding="utf-8").rstrip("\n"))
    return HTMLResponse(
        html, headers={**_STATIC_HEADERS, "Content-Security-Policy": PAGE_CSP, "X-Frame-Options": "DENY"}
    )


def asset(folder: Path, name: str) -> FileResponse:
    """A page's stylesheet, script or messages by name: from `folder`, else shared by every page; any other name
    is not found (and cannot climb out of either)."""
    served = ASSET_TYPES | DATA_TYPES
    for place in (folder, SHARED_STATIC):
        wanted = place / name
        if wanted.suffix in served and wanted.parent == place and wanted.is_file():
            return FileResponse(wanted, media_type=served[wanted.suffix], headers=_STATIC_HEADERS)
    raise NotFound("problem.not-found.file")


def add_page(router: APIRouter, path: str, *, html: Path) -> None:
    """Serve the page `html` at `path`, and the stylesheet and script beside it at /static/{name}; neither is
    part of the API's OpenAPI document."""

    @router.get(path, include_in_schema=False)
    async def web_page() -> HTMLResponse:
        return page(html)

    @router.get("/static/{name}", include_in_schema=False)
    async def web_page_asset(name: str) -> FileResponse:
        return asset(html.parent, name)


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
        language = negotiate(dict(scope["headers"]).get(b"accept-language", b"").decode("latin-1"))
        body = orjson.dumps(
            {
                "type": PROBLEM_TYPE_BASE + "too-large",
                "title": title("too-large", language),
                "status": 413,
                "detail": translate(language, "problem.too-large.limit", limit=self.max_bytes),
                "instance": scope.get("path", ""),
            }
        )
        headers = [
            (b"content-type", PROBLEM_JSON.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"content-language", language.encode()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


FORM_PATHS = frozenset({"/oauth/token"})


class JsonBodiesOnly:
    """Refuses, with 415, a request body that is not JSON: every body this project reads is JSON, and a body
    FastAPI cannot parse as such would otherwise read as a missing one (a 422 that names the wrong fault)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _has_body(scope) and not _is_json(scope):
            refusal = problem(
                Request(scope),
                status=415,
                code="unsupported-media-type",
                detail="problem.unsupported-media-type.json",
            )
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _has_body(scope: Scope) -> bool:
    headers = dict(scope["headers"])
    length = headers.get(b"content-length")
    return b"transfer-encoding" in headers or (length is not None and length.strip() not in (b"", b"0"))


def _is_json(scope: Scope) -> bool:
    media: bytes = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip().lower()
    if scope.get("path") in FORM_PATHS:
        return media == b"application/x-www-form-urlencoded"  # OAuth 2.0 token requests are forms (RFC 6749)
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


# Every answer may hold personal data (an inbox page, an alert): never cached, never sniffed into another
# type, never framed, and no referrer leaks a URL onwards. A route that sets its own value keeps it.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                extra = [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


class AnswerFailures:
    """Any failure a handler lets escape — the database pool exhausted under load, a bug — answered here with the
    503 problem (Retry-After), unless the answer had begun. Left to Starlette's last-resort handler, the 503 was
    written and the error raised on to the server, which then closed the connection: a partner's keep-alive
    connection broke and its next request got no answer (`maillage chaos` at 50 referrals/s: thousands)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            if started:
                raise
            log.error("request failed", extra={"error": type(exc).__name__, "method": scope.get("method")})
            await temporarily_unavailable(Request(scope))(scope, receive, send)


ReadinessCheck = Callable[[], Awaitable[bool]]


def install_common(
    app: FastAPI,
    *,
    max_body_bytes: int,
    audience: str,
    scrape_token: str,
    ready: ReadinessCheck | None = None,
    keys_max_age: int = 60,
) -> None:
    """Problem bodies, the body limit, security headers, and the routes every service has. Tokens are taken
    only for `audience`; `/metrics` only with `scrape_token`. Readiness is `ready`, or else the check the
    lifespan puts in `app.state.ready` once it has started (not ready before)."""
    if ready is None:

        async def ready() -> bool:
            check: ReadinessCheck | None = getattr(app.state, "ready", None)
            return bool(check and await check())

    app.state.audience = audience
    # Starlette's redirect to the slash-less path builds its URL from the Host header: an open redirect.
    app.router.redirect_slashes = False
    install_problem_handlers(app)
    app.add_middleware(AnswerFailures)  # innermost: its answers get the others' headers too
    app.add_middleware(JsonBodiesOnly)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(SecurityHeaders)

    @app.get("/.well-known/jwks.json", tags=["keys"], summary="This service's public keys (JWKS)")
    async def jwks_document(request: Request, response: Response) -> dict[str, list[dict[str, str]]]:
        trust = getattr(request.app.state, "trust", None)
        if trust is None:
            raise NotReady("problem.not-ready.keys")
        # Kept by the other services as long as they reload their keys anyway: a retired key is refused
        # everywhere within that bound.
        response.headers["Cache-Control"] = f"max-age={keys_max_age}"
        # A service speaking for several agencies (the dispatcher) publishes the keys of each.
        return jwks(trust, owners=getattr(request.app.state, "key_owners", None))

    expected = f"Bearer {scrape_token}".encode()

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics (metadata only), for the scraper's bearer secret",
        response_class=PlainTextResponse,
        responses={401: {"description": "No scrape secret"}},
    )
    async def metrics(request: Request) -> PlainTextResponse:
        # Counts by agency, sector and outcome say who works with whom: for the operators' scraper only.
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise Unauthorized("problem.unauthorized.scrape-secret")
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Connected to Kafka and the database",
        responses={503: {"description": "Not ready"}},
    )
    async def readyz() -> dict[str, str]:
        if not await ready():
            raise NotReady("problem.not-ready.dependencies")
        return {"status": "ready"}
