"""Connection limits: the security review's attacks, replayed against servers run as `maillage serve` runs them.

The review held 300 WebSockets and 100 SSE streams with one worker's token, idled 300 sockets without signing
in, and kept 400 half-sent requests open for more than 30 s. A real broker and the real services; the deadlines
are shortened for the tests through the services' settings.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from maillage.agency.app import create_app as create_agency_app
from maillage.agency.settings import AgencySettings
from maillage.core.clock import ManualClock
from maillage.core.messaging.envelope import new_subject_ref
from maillage.core.polling import eventually
from maillage.core.web.serving import raise_open_files_limit
from maillage.gateway.app import create_app as create_gateway_app
from maillage.monitor.app import create_app as create_monitor_app
from maillage.monitor.settings import MonitorSettings
from tests.oncall import LEVEL_1, LEVEL_2, WEDNESDAY_10H, Running, Socket, dispatcher, raise_alert, socket, start_pole
from tests.oncall import worker_token as token_of
from tests.support import Pole, assert_problem, listening

pytestmark = pytest.mark.integration
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]
IDLE_CONNECTIONS = 1000
CLOSED_WITHIN = 15.0  # seconds a test waits for the server to close what it must close


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sse_event(lines: AsyncIterator[str], kind: str) -> dict[str, Any]:
    """The next event of this type on an SSE stream."""
    event = None
    async for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == kind:
            body: dict[str, Any] = orjson.loads(line.removeprefix("data: "))
            return body
    raise AssertionError(f"the stream ended before a {kind} event")


async def refused_socket(running: Running, token: str | None) -> tuple[dict[str, Any], int | None]:
    """What a socket is told before the server closes it, and the close code."""
    async with socket(running, token, hello=False) as ws:
        error = await ws.next(timeout=CLOSED_WITHIN)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.next(timeout=CLOSED_WITHIN)
    return error, closed.value.rcvd.code if closed.value.rcvd else None


async def open_raw(url: str) -> Connection:
    parts = urlsplit(url)
    return await asyncio.open_connection(parts.hostname, parts.port)


async def until_closed(connection: Connection) -> bytes:
    """Everything the server sends until it closes the connection; fails if it keeps it open too long."""
    reader, writer = connection
    try:
        async with asyncio.timeout(CLOSED_WITHIN):
            return await reader.read()
    finally:
        writer.close()


async def trickle(connection: Connection) -> bytes:
    """A request head sent a byte at a time, each well within the deadline, never finished."""
    _, writer = connection
    closed = asyncio.create_task(until_closed(connection))
    for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000:
        if closed.done() or writer.is_closing():
            break
        writer.write(bytes([byte]))
        await asyncio.sleep(0.2)  # the attacker's pace, not a wait for the server
    return await closed


def assert_request_timeout(answer: bytes) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"content-type: application/problem+json" in head.lower()
    problem = orjson.loads(body)
    assert (problem["status"], problem["type"].rsplit("/", 1)[1]) == (408, "request-timeout") and problem["title"]


# --- one worker's streams ---------------------------------------------------------------------------------


async def test_a_worker_is_refused_streams_beyond_the_cap_and_keeps_the_ones_open(pole: Pole, tmp_path: Path) -> None:
    await start_pole(pole, tmp_path)
    token = token_of(pole, LEVEL_1[0])
    async with dispatcher(pole, ManualClock(WEDNESDAY_10H)) as running, AsyncExitStack() as stack:
        cap = running.dispatcher.live.max_per_worker
        assert cap == 5, "the default: a phone, a desktop, a few tabs"
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=running.url, timeout=30))
        sockets = [await stack.enter_async_context(socket(running, token)) for _ in range(cap - 2)]
        streams = [
            await stack.enter_async_context(client.stream("GET", "/v1/stream", headers=bearer(token))) for _ in range(2)
        ]
        assert [s.status_code for s in streams] == [200, 200]
        sse_lines = [s.aiter_lines() for s in streams]

        for _ in range(10):  # the review held 300 sockets and 100 streams with one token
            error, code = await refused_socket(running, token)
            assert (error["type"], error["status"], error["code"], code) == ("error", 429, "too-many-streams", 1013)
            assert error["title"] and "close another" in error["detail"]
        for _ in range(5):
            problem = assert_problem(await client.get("/v1/stream", headers=bearer(token)), 429)
            assert problem["type"].endswith("/too-many-streams")
        french = await client.get("/v1/stream", headers=bearer(token) | {"Accept-Language": "fr"})
        assert assert_problem(french, 429)["title"] == "Trop de connexions ouvertes"

        colleague = await stack.enter_async_context(socket(running, token_of(pole, LEVEL_1[1])))
        alert_id = await raise_alert(pole, new_subject_ref())
        for ws in [*sockets, colleague]:
            assert (await ws.next("alert"))["alert"]["alert_id"] == alert_id, "earlier streams still paged"
        for lines in sse_lines:
            assert (await sse_event(lines, "alert"))["alert"]["alert_id"] == alert_id

        await sockets[0].ws.close()
        again = await eventually(lambda: _signs_in(running, token), what="a stream once another closed")
        await stack.enter_async_context(again.ws)


async def _signs_in(running: Running, token: str) -> Socket | None:
    sock = Socket(await connect(running.url.replace("http", "ws", 1) + "/v1/ws", additional_headers=bearer(token)))
    if (await sock.next())["type"] == "hello":
        return sock
    await sock.ws.close()
    return None


async def test_an_agency_is_refused_streams_beyond_its_cap(pole: Pole, tmp_path: Path) -> None:
    await start_pole(pole, tmp_path)
    async with (
        dispatcher(pole, ManualClock(WEDNESDAY_10H), max_streams_per_agency=2) as running,
        socket(running, token_of(pole, LEVEL_1[0])),
        socket(running, token_of(pole, LEVEL_1[1])),
    ):
        error, code = await refused_socket(running, token_of(pole, LEVEL_2))
        assert (error["status"], error["code"], code) == (429, "too-many-streams", 1013)
        async with httpx.AsyncClient(base_url=running.url) as client:
            assert_problem(await client.get("/v1/stream", headers=bearer(token_of(pole, LEVEL_2))), 429)


# --- sockets that never sign in ---------------------------------------------------------------------------


async def test_sockets_that_never_sign_in_are_told_and_closed_after_the_deadline(pole: Pole, tmp_path: Path) -> None:
    await start_pole(pole, tmp_path)
    async with (
        dispatcher(pole, ManualClock(WEDNESDAY_10H), sign_in_seconds=1) as running,
        socket(running, None, hello=False) as prompt,
    ):
        await prompt.send({"type": "auth", "token": token_of(pole, LEVEL_1[0])})
        await prompt.next("hello")

        refused = await asyncio.gather(*(refused_socket(running, None) for _ in range(50)))
        for error, code in refused:
            assert (error["type"], error["status"], error["code"], code) == ("error", 408, "request-timeout", 1008)
            assert "Sign in within 1 s" in error["detail"] and error["title"]
        assert [m["type"] for m in await prompt.drain()] == ["snapshot"], "a socket that signed in stays open"


# --- half-sent requests -----------------------------------------------------------------------------------

HALF_SENT = (
    b"GET /healthz HTT",
    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n",
    b"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /healthz HTTP/1.1\r\n",  # a second, pipelined
    # The dispatcher needs no body to refuse this: answered at once, then closed when the body is overdue.
    b"POST /v1/alerts/0197a0a0-0000-7000-8000-000000000000/ack HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a"',
)


@pytest.mark.parametrize("parser", ["httptools", "h11"])
async def test_half_sent_requests_are_answered_408_and_closed(pole: Pole, tmp_path: Path, parser: str) -> None:
    await start_pole(pole, tmp_path)
    async with dispatcher(pole, ManualClock(WEDNESDAY_10H), header_timeout_seconds=1, http_parser=parser) as running:
        connections = []  # the review left 400 open for 30 s
        for i in range(100):
            # Each begins its request as soon as it is open: a connection's deadline runs from then, and opening a
            # hundred can take longer than it on a slow machine — the first ones, still silent, were closed unanswered.
            reader, writer = await open_raw(running.url)
            writer.write(HALF_SENT[i % len(HALF_SENT)])
            connections.append((reader, writer))
        silent = [await open_raw(running.url) for _ in range(20)]

        answers = await asyncio.gather(*(until_closed(c) for c in connections))
        for i, answer in enumerate(answers):
            sent = HALF_SENT[i % len(HALF_SENT)]
            if sent.startswith(b"POST"):
                assert answer.startswith(b"HTTP/1.1 401 ") and b" 408 " not in answer, answer[:200]
                continue
            if sent.count(b"HTTP/1.1\r\n") == 2:  # the whole first request was answered before the deadline
                assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
                answer = answer[answer.index(b"HTTP/1.1 408 ") :]
            assert_request_timeout(answer)
        assert await asyncio.gather(*(until_closed(c) for c in silent)) == [b""] * 20, "closed, owed no answer"
        assert_request_timeout(await trickle(await open_raw(running.url)))

        async with httpx.AsyncClient(base_url=running.url) as client:  # a whole request is served as before
            assert (await client.get("/healthz")).status_code == 200


async def test_every_service_closes_a_half_sent_request(pole: Pole) -> None:
    short = {"header_timeout_seconds": 1}
    gateway = pole.gateway_settings().model_copy(update=short)
    agency = AgencySettings(**pole.common("agency-refuge-liege"), agency_id="refuge-liege", **short)
    monitor = MonitorSettings(**pole.common("monitor"), **short)
    urls = {
        name: await pole.stack.enter_async_context(listening(app, settings=settings))
        for name, app, settings in (
            ("gateway", create_gateway_app(gateway), gateway),
            ("agency", create_agency_app(agency), agency),
            ("monitor", create_monitor_app(monitor), monitor),
        )
    }
    heads = [await open_raw(url) for url in urls.values()]
    for _, writer in heads:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    body = await open_raw(urls["agency"])  # a referral's body is read before its token is checked
    body[1].write(
        b"POST /v1/referrals HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 500\r\n\r\n{"subject_ref": '
    )
    for answer in await asyncio.gather(*(until_closed(c) for c in [*heads, body])):
        assert_request_timeout(answer)


# --- idle connections do not lock out a worker ------------------------------------------------------------


async def test_a_worker_signs_in_and_is_paged_while_a_thousand_idle_connections_are_open(
    pole: Pole, tmp_path: Path
) -> None:
    # Both ends of every connection live in this process, besides the broker's and the databases'.
    assert raise_open_files_limit() >= 2 * IDLE_CONNECTIONS + 500, "too few open files allowed (ulimit -Hn)"
    await start_pole(pole, tmp_path)
    token = token_of(pole, LEVEL_1[0])
    # The deadline lengthened so that none of the idle connections is closed before the page arrives:
    # what is tested is that they do not lock the worker out, with every other limit at its default.
    async with dispatcher(pole, ManualClock(WEDNESDAY_10H), header_timeout_seconds=600) as running:
        idle: list[Connection] = []
        try:
            for _ in range(IDLE_CONNECTIONS // 100):
                idle += await asyncio.gather(*(open_raw(running.url) for _ in range(100)))
            async with httpx.AsyncClient(base_url=running.url) as client:
                assert (await client.get("/v1/me", headers=bearer(token))).json()["worker"] == LEVEL_1[0]
            async with socket(running, None, hello=False) as dubois:
                await dubois.send({"type": "auth", "token": token})
                await dubois.next("hello")
                alert_id = await raise_alert(pole, new_subject_ref())
                assert (await dubois.next("alert"))["alert"]["alert_id"] == alert_id
            assert not [reader for reader, _ in idle if reader.at_eof()], "every idle connection was open all along"
        finally:
            for _, writer in idle:
                writer.close()
