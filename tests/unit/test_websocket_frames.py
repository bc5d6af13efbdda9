"""The dispatcher writes each message to its workers' sockets as one frame built once (`Frame.websocket`): the
bytes must be the frame the websockets library itself reads back — final, text, unmasked, the exact payload —
whatever the length's encoding (7 bits, 16 or 64)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Opcode

from maillage.dispatcher.live import Frame, text_frame
from tests.frames import read_frame


@given(st.sampled_from([0, 1, 125, 126, 127, 65535, 65536, 70000]), st.characters(codec="utf-8"))
def test_a_frame_of_any_length_reads_back_as_its_text(length: int, char: str) -> None:
    payload = (char * length).encode()[:length] if length else b""
    frame = read_frame(text_frame(payload), masked=False)
    assert (frame.opcode, frame.fin, frame.data) == (Opcode.TEXT, True, payload)


def test_a_message_goes_to_the_sockets_as_the_json_it_goes_to_the_streams() -> None:
    message = {"type": "alert", "alert": {"alert_id": "a-1", "level": 1, "note": "à l'étage, porte gauche"}}
    frame = Frame.of(message)
    assert bytes(read_frame(frame.websocket, masked=False).data).decode() == frame.text
