"""How every service is served: uvicorn with bounded connections and deadlines, the same in production and tests.

uvicorn bounds concurrent work (`limit_concurrency`) and the idle time between keep-alive requests, but gives a
connection all the time in the world to send its first request, or the rest of a half-sent one: a client that
opens sockets and sends nothing, or a few bytes, holds a file descriptor each until it leaves. The protocol
classes here give a new connection `header_timeout_seconds` to begin a request, and a begun request as long
again, from its first byte, for its head and body to arrive; then the connection is closed, with a 408 if a
request had begun and nothing was answered yet. They also apply uvicorn's concurrency limit to WebSocket
upgrades, which uvicorn lets through.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
import socket
from typing import Any, ClassVar

import h11
import orjson
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from maillage.core.config.settings import ServiceSettings
from maillage.core.i18n import DEFAULT_LANGUAGE, translate
from maillage.core.lifecycle import TASK_FAILURES, settle_heap
from maillage.core.web.problems import PROBLEM_JSON, PROBLEM_TYPE_BASE, title

log = logging.getLogger(__name__)
# File descriptors a service needs besides its clients' connections: database, Kafka, keys, logs.
RESERVED_FILES = 256
# A service stopped because a background task did (`TaskFailures`): sysexits' EX_SOFTWARE.
EXIT_TASK_FAILED = 70


def _response(status: str, content_type: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


REQUEST_TIMEOUT = _response(
    "408 Request Timeout",
    PROBLEM_JSON,
    orjson.dumps(
        {
            "type": PROBLEM_TYPE_BASE + "request-timeout",
            "title": title("request-timeout", DEFAULT_LANGUAGE),
            "status": 408,
            # Answered by the protocol before any header is read: in the default language.
            "detail": translate(DEFAULT_LANGUAGE, "problem.request-timeout.late"),
        }
    ),
)
# The same answer uvicorn gives a plain request over its concurrency limit.
BUSY = _response("503 Service Unavailable", "text/plain; charset=utf-8", b"Service Unavailable")


class _RequestDeadline:
    """A new connection must begin a request within `request_seconds`, and a request (head and body) must
    arrive within `request_seconds` of its first byte; the keep-alive time between requests stays uvicorn's."""

    request_seconds: ClassVar[float] = 10.0
    _deadline: asyncio.TimerHandle | None = None
    _begun = False
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    connections: set[Any]
    tasks: set[asyncio.Task[None]]
    limit_concurrency: int | None

    # Cooperative: the mixin comes first, the uvicorn protocol after it in each class's bases.
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._await_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _await_request(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_seconds, self._overdue)

    def _request_begins(self) -> None:
        """From the first byte, not reset by the later ones: a trickle of bytes cannot hold the connection."""
        if not self._begun:
            self._await_request()
            self._begun = True

    def _request_complete(self) -> None:
        self._disarm()
        self._begun = False

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _overdue(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._begun and not self._answered():  # a connection that never sent a byte is owed no answer
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()

    def _answered(self) -> bool:
        """Whether the app began answering the current request (possible before its body is in)."""
        raise NotImplementedError

    def _full(self) -> bool:
        limit = self.limit_concurrency
        return limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit)

    def _refuse_upgrade(self) -> bool:
        """A WebSocket upgrade over the limit gets the 503 a plain request would; true if refused."""
        self._request_complete()  # from here on, the socket's own deadlines apply (sign-in, pings)
        if not self._full():
            return False
        self.transport.write(BUSY)
        self.transport.close()
        return True


class HttpToolsWithDeadline(_RequestDeadline, HttpToolsProtocol):
    _current: Any = None  # the current request's cycle, once its head is in

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_begins()
        self._current = None

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._current = self.cycle

    def _answered(self) -> bool:
        return self._current is not None and bool(self._current.response_started)

    def on_message_complete(self) -> None:
        self._request_complete()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        if not self._refuse_upgrade():
            super().handle_websocket_upgrade()


class H11WithDeadline(_RequestDeadline, H11Protocol):
    _upgraded = False

    def handle_events(self) -> None:
        super().handle_events()
        if self._upgraded or self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.SEND_BODY or (state is h11.IDLE and self.conn.trailing_data[0]):
            self._request_begins()
        elif state is not h11.IDLE:
            self._request_complete()

    def _answered(self) -> bool:
        return self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE)

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._upgraded = True
        if not self._refuse_upgrade():
            super().handle_websocket_upgrade(event)


PARSERS: dict[str, type[_RequestDeadline]] = {"httptools": HttpToolsWithDeadline, "h11": H11WithDeadline}


@functools.cache
def http_protocol(request_seconds: float, *, parser: str = "httptools") -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol on `parser` with the request deadline; one class per deadline, since uvicorn
    builds each connection's protocol from the class alone."""
    base = PARSERS[parser]
    return type(base.__name__, (base,), {"request_seconds": request_seconds})


def uvicorn_options(settings: ServiceSettings, **extra: Any) -> dict[str, Any]:
    """uvicorn's options for a service: the limits and TLS from its settings, then the service's own `extra`."""
    tls = (
        {"ssl_certfile": str(settings.tls_cert_file), "ssl_keyfile": str(settings.tls_key_file)}
        if settings.tls_cert_file is not None
        else {}
    )
    return {
        **tls,
        "http": http_protocol(settings.header_timeout_seconds, parser=settings.http_parser),
        "limit_concurrency": settings.max_connections,
        "timeout_keep_alive": settings.keep_alive_seconds,
        "log_config": None,
        "access_log": False,
        **extra,
    }


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to its hard one (each connection holds one); the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            return soft
        return wanted
    return soft


class _Server(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        settle_heap()  # started (its lifespan) and listening: from here on, what it makes is per request


def serve(app: Any, *, settings: ServiceSettings, host: str, port: int, **extra: Any) -> None:
    """Run `app` in the foreground as `maillage serve` does, until a signal stops it."""
    files = raise_open_files_limit()
    if files != resource.RLIM_INFINITY and files < settings.max_connections + RESERVED_FILES:
        log.warning(
            "max_connections=%d does not fit in %d open files; raise the hard limit (ulimit -Hn)",
            settings.max_connections,
            files,
        )
    server = _Server(uvicorn.Config(app, host=host, port=port, **uvicorn_options(settings, **extra)))

    def stop() -> None:
        server.should_exit = True  # uvicorn's graceful stop, as on SIGTERM: every step of it bounded

    TASK_FAILURES.stop = stop
    server.run()
    if TASK_FAILURES.failed is not None:
        raise SystemExit(EXIT_TASK_FAILED)
