"""WebSocket frames read back by the websockets library's own codec: what a peer would make of our bytes."""

from __future__ import annotations

from websockets.frames import Frame
from websockets.streams import StreamReader


def read_frame(data: bytes, *, masked: bool) -> Frame:
    """The one frame `data` holds (masked: a client's, as a server reads it; unmasked: a server's)."""
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=masked)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("an incomplete frame")
