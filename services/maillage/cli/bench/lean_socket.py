"""A WebSocket client as lean as a phone's: the bench's on-call workers, a thousand of them on the two cores the
services run on.

Through the websockets library each message a worker's socket received cost its client process ~36 µs (its
reader task, frame generator, message queue and `recv`): a thousand workers took 0.7 of a core at 20 alerts/s,
on the machine whose dispatcher, broker and gateway the figure measures, and the machine was saturated by its own
load generator. This one is an asyncio protocol: the RFC 6455 opening handshake, then each frame parsed where
its bytes arrive. What it reads from the server is only what a server may send — unmasked frames, text, binary,
continuations, ping, pong and close; it answers pings and closes with masked frames of its own, as a client must.
It offers permessage-deflate when asked, as browsers do, and refuses a server that accepts it (it reads
uncompressed frames only: the bench's figures would then not be the dispatcher's). Stdlib only: every socket
child process imports it afresh.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, 1.3
_TEXT, _BINARY, _CONTINUATION, _CLOSE, _PING, _PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

OnMessage = Callable[[float, bytes], None]  # arrival (epoch seconds, as the frame's last bytes were read), payload


class HandshakeFailed(Exception):
    """The server did not switch protocols as RFC 6455 asks (its status line, or a header, is given)."""


def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())  # RFC 6455 names SHA-1


def client_frame(opcode: int, payload: bytes, *, mask: bytes | None = None) -> bytes:
    """A final frame from the client: masked (RFC 6455, 5.3), with a fresh key unless one is given."""
    key = os.urandom(4) if mask is None else mask
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, 0x80 | size))
    elif size < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes((key * (size // 4 + 1))[:size], "big")).to_bytes(
        size, "big"
    )
    return head + key + masked


class FrameReader:
    """Server frames from a byte stream, whatever the pieces it arrives in: whole messages to `on_message`,
    control frames to `on_control`."""

    def __init__(self, on_message: OnMessage, on_control: Callable[[int, bytes], None]) -> None:
        self.on_message, self.on_control = on_message, on_control
        self.buffer = bytearray()
        self.fragments: list[bytes] = []

    def feed(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        at = time.time()
        start, end = 0, len(buffer)
        while end - start >= 2:
            first, second = buffer[start], buffer[start + 1]
            if second & 0x80:
                raise ValueError("a server's frame is never masked (RFC 6455, 5.1)")
            if first & 0x70:
                raise ValueError("a frame with reserved bits set: no extension was negotiated")
            size, head = second & 0x7F, 2
            if size == 126:
                if end - start < 4:
                    break
                size, head = int.from_bytes(buffer[start + 2 : start + 4], "big"), 4
            elif size == 127:
                if end - start < 10:
                    break
                size, head = int.from_bytes(buffer[start + 2 : start + 10], "big"), 10
            if size > MAX_MESSAGE_BYTES:
                raise ValueError(f"a frame of {size} bytes")
            if end - start < head + size:
                break
            payload = bytes(buffer[start + head : start + head + size])
            start += head + size
            self._frame(first & 0x80 != 0, first & 0x0F, payload, at)
        del buffer[:start]

    def _frame(self, fin: bool, opcode: int, payload: bytes, at: float) -> None:
        if opcode >= _CLOSE:
            self.on_control(opcode, payload)
            return
        if (opcode == _CONTINUATION) != bool(self.fragments):
            raise ValueError("a continuation frame without a message begun, or a message begun inside another")
        self.fragments.append(payload)
        if sum(map(len, self.fragments)) > MAX_MESSAGE_BYTES:
            raise ValueError("a message larger than the client reads")
        if fin:
            message, self.fragments = b"".join(self.fragments), []
            self.on_message(at, message)


class LeanSocket(asyncio.Protocol):
    """One worker's socket. `opened` resolves once the server switched protocols; `closed` with the reason the
    connection ended ("" when this side closed it)."""

    def __init__(self, request: bytes, key: bytes, on_message: OnMessage) -> None:
        self.request, self.key = request, key
        self.reader = FrameReader(on_message, self._control)
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[str] = loop.create_future()
        self.response = bytearray()
        self.closing = False

    @classmethod
    async def connect(
        cls, url: str, *, on_message: OnMessage, headers: dict[str, str], offer_deflate: bool, timeout: float
    ) -> LeanSocket:
        parts = urlsplit(url)
        if parts.scheme != "ws" or parts.hostname is None or parts.port is None:
            raise ValueError(f"a ws:// URL with a literal host and port, not {url!r}")
        key = base64.b64encode(os.urandom(16))
        lines = [
            f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
            f"Host: {parts.hostname}:{parts.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key.decode()}",
            "Sec-WebSocket-Version: 13",
            *(["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"] if offer_deflate else []),
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            transport, socket = await loop.create_connection(
                lambda: cls(request, key, on_message), parts.hostname, parts.port
            )
            try:
                await socket.opened
            except BaseException:
                transport.close()
                raise
        return socket

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's TCPTransport has the methods, not the base class).
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        try:
            if not self.opened.done():
                data = self._handshake(data)
            if data:
                self.reader.feed(data)
        except (HandshakeFailed, ValueError) as exc:
            if not self.opened.done():
                self.opened.set_exception(exc)
            self._end(f"{type(exc).__name__}: {exc}")

    def _handshake(self, data: bytes) -> bytes:
        """The server's answer to the opening handshake; what follows it (frames already) is returned."""
        self.response += data
        end = self.response.find(b"\r\n\r\n")
        if end < 0:
            if len(self.response) > 64 * 1024:
                raise HandshakeFailed("an answer without end")
            return b""
        head, rest = bytes(self.response[:end]).decode("latin-1"), bytes(self.response[end + 4 :])
        status, *fields = head.split("\r\n")
        if status.split(" ", 2)[1:2] != ["101"]:
            raise HandshakeFailed(status)
        got = {name.strip().lower(): value.strip() for name, _, value in (f.partition(":") for f in fields)}
        if got.get("sec-websocket-accept", "").encode() != accept_key(self.key):
            raise HandshakeFailed("Sec-WebSocket-Accept does not answer the key")
        if got.get("sec-websocket-extensions"):
            raise HandshakeFailed(f"the server negotiated {got['sec-websocket-extensions']}: frames read raw only")
        self.response.clear()
        self.opened.set_result(None)
        return rest

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == _PING:
            self._write(client_frame(_PONG, payload))
        elif opcode == _CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if not self.closing:
                self._write(client_frame(_CLOSE, payload[:2]))
            self._end("" if self.closing else f"closed {code}")
        elif opcode != _PONG:
            raise ValueError(f"an unknown control frame {opcode:#x}")

    def close(self) -> None:
        """A normal closure (1000), without waiting for the server's answer."""
        if self.transport is not None and not self.closing:
            self.closing = True
            self._write(client_frame(_CLOSE, (1000).to_bytes(2, "big")))
        self._end("")

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _end(self, why: str) -> None:
        if not self.closed.done():
            self.closed.set_result(why)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the opening handshake"))
        if not self.closed.done():
            self.closed.set_result("" if self.closing else f"connection lost: {type(exc).__name__ if exc else 'EOF'}")
