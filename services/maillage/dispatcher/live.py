"""Workers connected right now (WebSocket or SSE), and what is pushed to them.

Each connection has its own queue; the socket or stream task drains it. A slow or dead client
fills only its own queue: when it is full the connection is dropped, and the worker gets every
open alert again on reconnecting. Streams are capped per worker and per agency, so one token (or one
agency's tokens) cannot hold the dispatcher's sockets and memory.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from maillage.core.observability.metrics import ONCALL_CONNECTIONS
from maillage.domain.errors import TooManyStreams

Message = dict[str, Any]
QUEUE_SIZE = 1000


@dataclass(frozen=True)
class Worker:
    agency: str
    id: str


@dataclass(frozen=True)
class Frame:
    """A message as it travels, serialised once however many workers it goes to — as a WebSocket frame too."""

    type: str
    text: str
    websocket: bytes  # the whole frame a server sends (RFC 6455 §5.2): the same bytes for every socket

    @classmethod
    def of(cls, message: Message) -> Frame:
        data = orjson.dumps(message)
        return cls(type=str(message["type"]), text=data.decode(), websocket=text_frame(data))


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame (a server's frames are never masked), without extensions (the dispatcher
    negotiates none)."""
    size = len(payload)
    if size < 126:
        head = bytes((0x81, size))
    elif size < 1 << 16:
        head = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return head + payload


class Wire(Protocol):
    """A worker's socket that takes whole frames at once, in order, with no task between (`streams.py`)."""

    def write(self, data: bytes) -> bool:
        """Whole frames; False when the socket is closing or its client reads too slowly: the connection is
        dropped."""
        ...


@dataclass(eq=False)
class Connection:
    """A worker's stream. Its messages wait in its queue for its task to write them — unless `wire` is set:
    then each is written to the socket as it is sent (an alert paging a thousand workers costs a thousand
    writes of the same bytes, not a thousand task switches and frame encodings)."""

    worker: Worker
    kid: str = ""  # the token key that opened it (retiring that key closes it), or SESSION_KID_PREFIX + session id
    revoked: bool = False
    queue: asyncio.Queue[Frame | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    wire: Wire | None = None

    def send(self, message: Message | Frame) -> bool:
        frame = message if isinstance(message, Frame) else Frame.of(message)
        if self.wire is not None:
            return self.wire.write(frame.websocket)
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            return False
        return True

    def close(self) -> None:
        while True:  # make room for the end-of-stream mark
            try:
                self.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                self.queue.get_nowait()


class Live:
    def __init__(self, *, max_per_worker: int = 5, max_per_agency: int = 2000) -> None:
        self._by_agency: dict[str, dict[str, set[Connection]]] = defaultdict(lambda: defaultdict(set))
        self._per_agency: Counter[str] = Counter()
        self.max_per_worker = max_per_worker
        self.max_per_agency = max_per_agency

    def admit(self, worker: Worker) -> None:
        """Raises TooManyStreams if `worker` may not open one more stream now."""
        if len(self._by_agency[worker.agency].get(worker.id, ())) >= self.max_per_worker:
            raise TooManyStreams("problem.too-many-streams.per-worker", most=self.max_per_worker)
        if self._per_agency[worker.agency] >= self.max_per_agency:
            raise TooManyStreams("problem.too-many-streams.per-agency", most=self.max_per_agency)

    def connect(self, worker: Worker, *, kid: str = "") -> Connection:
        """A new stream of `worker`'s, opened with a token of key `kid`; TooManyStreams over the caps."""
        self.admit(worker)
        connection = Connection(worker, kid=kid)
        self._by_agency[worker.agency][worker.id].add(connection)
        self._per_agency[worker.agency] += 1
        ONCALL_CONNECTIONS.labels(worker.agency).inc()
        return connection

    def disconnect(self, connection: Connection) -> None:
        workers = self._by_agency[connection.worker.agency]
        mine = workers.get(connection.worker.id)
        if mine is not None and connection in mine:
            mine.discard(connection)
            self._per_agency[connection.worker.agency] -= 1
            ONCALL_CONNECTIONS.labels(connection.worker.agency).dec()
            if not mine:
                del workers[connection.worker.id]

    def revoke(self, valid: Callable[[str], bool]) -> int:
        """Close every connection opened with a token key that is no longer valid; how many were."""
        closed = [
            c for workers in self._by_agency.values() for mine in workers.values() for c in mine if not valid(c.kid)
        ]
        for connection in closed:
            connection.revoked = True
            connection.close()
            self.disconnect(connection)
        return len(closed)

    def connected(self, agency: str) -> frozenset[str]:
        return frozenset(self._by_agency[agency])

    def tell(self, messages: Iterable[tuple[str, str, Message]]) -> None:
        """Each (agency, worker, message) sent; a message going to hundreds of workers is serialised once, and a
        socket that several of them go to (a batch of alerts, read after a delay) is written to once."""
        frames: dict[int, Frame] = {}
        wired: dict[Connection, list[bytes]] = {}
        for agency, worker, message in messages:
            frame = frames.get(id(message))
            if frame is None:
                frame = frames[id(message)] = Frame.of(message)
            for connection in list(self._by_agency[agency].get(worker, ())):
                if connection.wire is not None:
                    wired.setdefault(connection, []).append(frame.websocket)
                elif not connection.send(frame):
                    self._drop(connection)
        for connection, data in wired.items():
            assert connection.wire is not None
            if not connection.wire.write(data[0] if len(data) == 1 else b"".join(data)):
                self._drop(connection)

    def send(self, agency: str, worker: str, message: Message | Frame) -> None:
        for connection in list(self._by_agency[agency].get(worker, ())):
            if not connection.send(message):
                self._drop(connection)

    def _drop(self, connection: Connection) -> None:
        connection.close()
        self.disconnect(connection)
