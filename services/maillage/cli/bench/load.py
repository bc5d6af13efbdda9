"""The load generator: POSTs on an open-loop schedule over a lean keep-alive HTTP/1.1 client."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import orjson

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass(frozen=True)
class Sent:
    event_id: str | None
    sent_at: datetime
    due_at: datetime
    lag_s: float
    error: str | None = None


class KeepAliveClient:
    """The load generator's HTTP/1.1 client: keep-alive connections, a new one whenever all are busy.

    httpx's pool scans every connection for every request, so at a few hundred requests in flight the
    client itself became the bottleneck (and ate the CPU the services needed). This does one thing: POST
    a JSON body and read a Content-Length response, as uvicorn sends them."""

    # uvicorn closes a connection idle for 5 s; never reuse one idle for that long.
    MAX_IDLE = 2.0

    def __init__(self, url: str, *, headers: dict[str, str]) -> None:
        parsed = httpx.URL(url)
        self.host, self.port = parsed.host, parsed.port or 80
        self._headers = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())
        self._idle: list[tuple[float, Connection]] = []

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        status, _, payload = await self.exchange(path, body)
        return status, payload

    async def exchange(self, path: str, body: bytes) -> tuple[int, bytes, bytes]:
        """POST `body`: the status, the response's head (lower-cased) and its body."""
        reader, writer = await self._connection()
        try:
            writer.write(self._request(path, body))
            head = (await reader.readuntil(b"\r\n\r\n")).lower()
            length = int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            payload = await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        if b"connection: close" in head:
            writer.close()
        else:
            self._idle.append((time.monotonic(), (reader, writer)))
        return int(head[9:12]), head, payload

    def _request(self, path: str, body: bytes) -> bytes:
        return (
            b"POST %s HTTP/1.1\r\nhost: %s:%d\r\n%scontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (path.encode(), self.host.encode(), self.port, self._headers, len(body), body)
        )

    async def _connection(self) -> Connection:
        while self._idle:
            since, connection = self._idle.pop()
            if time.monotonic() - since < self.MAX_IDLE:
                return connection
            connection[1].close()
        return await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        for _, (_, writer) in self._idle:
            writer.close()
        self._idle.clear()


async def open_loop(
    client: KeepAliveClient, bodies: list[bytes], *, rate: float, path: str = "/v1/referrals"
) -> list[Sent]:
    """POST each body at its own scheduled time, whatever earlier answers do (no coordinated omission)."""
    loop = asyncio.get_running_loop()
    start_mono = loop.time() + 0.05
    start_wall = time.time() + 0.05
    tasks: list[asyncio.Task[Sent]] = []
    for i, body in enumerate(bodies):
        due = start_mono + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        due_at = datetime.fromtimestamp(start_wall + i / rate, UTC)
        tasks.append(asyncio.create_task(_post(client, path, body, due=due, due_at=due_at)))
    return list(await asyncio.gather(*tasks))


async def _post(client: KeepAliveClient, path: str, body: bytes, *, due: float, due_at: datetime) -> Sent:
    lag = asyncio.get_running_loop().time() - due
    sent_at = datetime.now(UTC)
    try:
        status, answer = await client.post(path, body)
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
        return Sent(event_id=None, sent_at=sent_at, due_at=due_at, lag_s=lag, error=type(exc).__name__)
    if status != 202:
        return Sent(event_id=None, sent_at=sent_at, due_at=due_at, lag_s=lag, error=f"HTTP {status}")
    return Sent(event_id=orjson.loads(answer)["event_id"], sent_at=sent_at, due_at=due_at, lag_s=lag)
