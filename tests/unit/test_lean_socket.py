"""The bench's lean WebSocket client (`cli/bench/lean_socket.py`) reads what a server sends as the websockets
library would — whatever pieces the bytes arrive in — answers pings and closes as a client must (masked), and
refuses a server that would compress: its figures would not be the dispatcher's."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import uvicorn
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.frames import Frame as WireFrame
from websockets.frames import Opcode

from maillage.cli.bench.lean_socket import FrameReader, HandshakeFailed, LeanSocket, client_frame
from maillage.dispatcher.live import text_frame
from tests.frames import read_frame


def server_frame(opcode: Opcode, payload: bytes, *, fin: bool = True) -> bytes:
    return WireFrame(opcode, payload, fin=fin).serialize(mask=False)


@given(
    st.lists(st.sampled_from([0, 1, 125, 126, 127, 65535, 65536, 70000]), min_size=1, max_size=4),
    st.lists(st.integers(min_value=1, max_value=70_000), max_size=6),
)
def test_messages_read_back_whatever_pieces_their_bytes_arrive_in(sizes: list[int], cuts: list[int]) -> None:
    payloads = [bytes([65 + i % 26]) * size for i, size in enumerate(sizes)]
    stream = b"".join(text_frame(p) for p in payloads[:-1])
    last = payloads[-1]  # the last one fragmented: a text frame and a continuation
    stream += server_frame(Opcode.TEXT, last[: len(last) // 2], fin=False) + server_frame(
        Opcode.CONT, last[len(last) // 2 :]
    )
    got: list[bytes] = []
    reader = FrameReader(lambda _at, message: got.append(message), lambda *_: None)
    start = 0
    for cut in [*sorted({c % (len(stream) + 1) for c in cuts}), len(stream)]:
        reader.feed(stream[start:cut])
        start = max(start, cut)

    assert got == payloads


def test_a_ping_is_answered_with_its_payload_in_a_masked_pong() -> None:
    controls: list[tuple[int, bytes]] = []
    reader = FrameReader(lambda *_: None, lambda opcode, payload: controls.append((opcode, payload)))
    reader.feed(server_frame(Opcode.PING, b"are you there"))

    assert controls == [(Opcode.PING, b"are you there")]
    pong = read_frame(client_frame(Opcode.PONG, b"are you there"), masked=True)
    assert (pong.opcode, pong.data) == (Opcode.PONG, b"are you there")


@pytest.mark.parametrize("size", [0, 3, 125, 126, 65536])
def test_a_client_frame_is_masked_and_reads_back(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    data = client_frame(Opcode.TEXT, payload)

    assert data[1] & 0x80, "masked"
    assert read_frame(data, masked=True).data == payload


def test_a_masked_server_frame_is_refused() -> None:
    reader = FrameReader(lambda *_: None, lambda *_: None)
    with pytest.raises(ValueError, match="never masked"):
        reader.feed(client_frame(Opcode.TEXT, b"hello"))


async def _talk(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text('{"type":"hello"}')
    await websocket.send_text('{"type":"alert","alert":{"alert_id":"a-1"}}')
    await websocket.close(code=1001)


@asynccontextmanager
async def server(*, deflate: bool) -> AsyncIterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = Starlette(routes=[WebSocketRoute("/stream", _talk)])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws="websockets-sansio", ws_per_message_deflate=deflate, log_level="error"
    )
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve())
    while not running.started:
        await asyncio.sleep(0.01)
    try:
        yield f"ws://127.0.0.1:{port}/stream"
    finally:
        running.should_exit = True
        await task


async def test_a_uvicorn_servers_messages_and_close_reach_the_client() -> None:
    got: list[bytes] = []
    async with server(deflate=False) as url:
        lean = await LeanSocket.connect(
            url, on_message=lambda _at, raw: got.append(raw), headers={}, offer_deflate=True, timeout=10
        )
        why = await asyncio.wait_for(lean.closed, 10)

    assert got == [b'{"type":"hello"}', b'{"type":"alert","alert":{"alert_id":"a-1"}}']
    assert why == "closed 1001"


async def test_a_server_that_would_compress_is_refused() -> None:
    async with server(deflate=True) as url:
        with pytest.raises(HandshakeFailed, match="permessage-deflate"):
            await LeanSocket.connect(url, on_message=lambda *_: None, headers={}, offer_deflate=True, timeout=10)
