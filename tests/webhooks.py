"""Test support for webhooks: a CA and a certificate for 127.0.0.1 made per test (none in git), https receivers
on loopback, a network file that allow-lists them and trusts the CA, and a partner's webhook manager token."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from maillage.core.config.network import load_network
from maillage.core.config.settings import DEFAULT_NETWORK
from maillage.core.crypto.network_ca import TlsDirs, ensure_ca, issue
from maillage.core.crypto.tokens import Scope
from maillage.core.polling import eventually
from maillage.core.webhooks.delivery import SIGNATURE_HEADER, verify_signature
from tests.support import Pole

LOOPBACK = "127.0.0.1"


# --- certificates ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_certificates(directory: Path) -> Certificates:
    """A CA of this test's own (made as `maillage keys init` makes the network's), and a server certificate it
    signed for the loopback."""
    dirs = TlsDirs(private=directory / "private", public=directory / "public")
    ensure_ca(dirs)
    issue(dirs, "receiver", [LOOPBACK])
    return Certificates(ca_file=dirs.ca_cert, cert_file=dirs.cert("receiver"), key_file=dirs.key("receiver"))


# --- receivers ---------------------------------------------------------------------------------------------


def bound_socket() -> socket.socket:
    """A socket on a free loopback port, bound before the network file names it (no race for the port)."""
    sock = socket.socket()
    sock.bind((LOOPBACK, 0))
    return sock


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


@dataclass
class Receiver:
    """A partner system's endpoint that verifies every signature and fails the first `failures` attempts."""

    secret: str = ""
    failures: int = 0
    attempts: list[tuple[int, bool]] = field(default_factory=list)  # (status answered, signature valid)
    accepted: list[bytes] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)  # time.monotonic() of each request

    async def endpoint(self, request: Request) -> Response:
        self.received_at.append(time.monotonic())
        body = await request.body()
        header = request.headers.get(SIGNATURE_HEADER, "")
        valid = verify_signature(self.secret, header, body, now=int(time.time()))
        status = 503 if len(self.attempts) < self.failures else (200 if valid else 401)
        self.attempts.append((status, valid))
        self.signatures.append(header)
        if status == 200:
            self.accepted.append(body)
        return Response(status_code=status)


@asynccontextmanager
async def serve_https(receiver: Receiver, certs: Certificates, sock: socket.socket | None = None) -> AsyncIterator[str]:
    """`receiver` behind uvicorn over https on 127.0.0.1; yields its URL."""
    sock = sock or bound_socket()
    app = Starlette(routes=[Route("/hook", receiver.endpoint, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, ssl_certfile=str(certs.cert_file), ssl_keyfile=str(certs.key_file))
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await eventually(lambda: asyncio.sleep(0, server.started or task.done()), what="the receiver to listen")
    try:
        yield f"https://{LOOPBACK}:{port_of(sock)}/hook"
    finally:
        server.should_exit = True
        await task
        sock.close()


@dataclass
class Connection:
    accepted_at: datetime
    accepted: float  # time.monotonic()
    ended: float | None = None


@dataclass
class RawReceiver:
    """A TLS endpoint at the socket level: counts every TCP connection, then answers each request `status`.
    `trickle`: the response goes out one byte every so many seconds. `silent`: accepts and never answers,
    not even the TLS handshake."""

    certs: Certificates
    status: int = 200
    trickle: float | None = None
    silent: bool = False
    connections: list[Connection] = field(default_factory=list)
    handlers: set[asyncio.Task[Any]] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = Connection(accepted_at=datetime.now(UTC), accepted=time.monotonic())
        self.connections.append(connection)
        self.handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            if self.silent:
                await reader.read()
                return
            await writer.start_tls(self.certs.server_context())
            await reader.readuntil(b"\r\n\r\n")
            response = f"HTTP/1.1 {self.status} OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
            for chunk in [response[i : i + 1] for i in range(len(response))] if self.trickle else [response]:
                writer.write(chunk)
                await writer.drain()
                if self.trickle:
                    await asyncio.sleep(self.trickle)  # the receiver's own pace: the attack being replayed
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the caller gave up on us: that is what the test looks for
        finally:
            connection.ended = time.monotonic()
            writer.close()


@asynccontextmanager
async def serve_raw(receiver: RawReceiver, sock: socket.socket | None = None) -> AsyncIterator[str]:
    sock = sock or bound_socket()
    server = await asyncio.start_server(receiver.handle, sock=sock)
    try:
        yield f"https://{LOOPBACK}:{port_of(sock)}/hook"
    finally:
        server.close()
        for handler in receiver.handlers:  # a trickle would go on long after the test
            handler.cancel()
        await asyncio.gather(*receiver.handlers, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await server.wait_closed()


# --- the network file, tokens, the API ---------------------------------------------------------------------


def webhooks_table(certs: Certificates, *allow: socket.socket) -> dict[str, Any]:
    """The network file's [webhooks]: these loopback sockets allow-listed, the test's CA trusted."""
    return {"allow": [{"host": LOOPBACK, "port": port_of(s)} for s in allow], "ca_file": str(certs.ca_file)}


def webhook_network(directory: Path, webhooks: dict[str, Any]) -> Path:
    """The demo network file, with a [webhooks] table of the test's own."""
    doc = tomllib.loads(DEFAULT_NETWORK.read_text())
    doc["policy"] = str(load_network(DEFAULT_NETWORK).policy)
    doc["webhooks"] = webhooks
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "network.toml"
    path.write_bytes(tomli_w.dumps(doc).encode())
    return path


def manager(pole: Pole, agency: str) -> dict[str, str]:
    """Headers of a partner system's administrator: a token with the `webhooks:manage` scope only."""
    return {"Authorization": f"Bearer {pole.token(agency, (Scope.WEBHOOKS_MANAGE,))}"}


async def register(pole: Pole, agency: str, url: str, **body: Any) -> dict[str, Any]:
    response = await pole[agency].post("/v1/webhooks", json={"url": url, **body}, headers=manager(pole, agency))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def deliveries(pole: Pole, agency: str, hook_id: str) -> list[dict[str, Any]]:
    """Every delivery of the webhook, page after page."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        response = await pole[agency].get(
            f"/v1/webhooks/{hook_id}/deliveries",
            headers=manager(pole, agency),
            params={"limit": 2, **({"cursor": cursor} if cursor else {})},
        )
        assert response.status_code == 200, response.text
        page = response.json()
        found += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found
