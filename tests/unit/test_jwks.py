"""JWKS documents as a service reads them: another owner's key never taken, the cache honoured, the last good set
kept — against a real HTTP server on the loopback interface, its clock and waits injected."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from maillage.core.crypto.jwks import MIN_REFETCH_SECONDS, JwksError, JwksSource, parse_jwks
from maillage.core.crypto.keys import ALL_USES, KeyDirs, ensure_keys, read_public

pytestmark = pytest.mark.unit


def jwks_of(tmp_path: Path, owner: str) -> list[dict[str, str]]:
    dirs = KeyDirs(private=tmp_path / "private", public=tmp_path / "public")
    ensure_keys(dirs, {owner: ALL_USES})
    return [k.to_jwk() for k in read_public(dirs, owner)]


def test_only_the_owners_own_keys_are_taken_from_its_document(tmp_path: Path) -> None:
    mine, theirs = jwks_of(tmp_path, "refuge-liege"), jwks_of(tmp_path, "gateway")
    shadow = {**mine[0], "kid": theirs[0]["kid"]}  # in its own name, but under the gateway's key id
    wrong_curve = {**mine[1], "crv": "P-256"}
    document = {"keys": [*mine, *theirs, shadow, wrong_curve, "not a key", {"kid": "refuge-liege.x"}]}

    taken = parse_jwks(document, owner="refuge-liege")

    assert sorted(k.kid for k in taken) == sorted(k["kid"] for k in mine)
    assert {k.owner for k in taken} == {"refuge-liege"}


@pytest.mark.parametrize("document", [{}, {"keys": "x"}, [], {"keys": []}, {"keys": [{"owner": "gateway"}]}])
def test_a_document_without_a_key_of_its_owner_is_refused(document: Any) -> None:
    with pytest.raises(JwksError, match="refuge-liege"):
        parse_jwks(document, owner="refuge-liege")


@dataclass
class Published:
    """What the owner's server answers: its document, its Cache-Control, and how often it was asked."""

    document: bytes = b"{}"
    cache_control: str = "max-age=30"
    status: int = 200
    asked: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def published() -> Iterator[tuple[Published, str]]:
    state = Published()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.asked += 1
                body, status = state.document, state.status
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", state.cache_control)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_set_is_kept_for_its_max_age_within_the_refresh_bound_and_kept_when_a_fetch_fails(
    tmp_path: Path, published: tuple[Published, str]
) -> None:
    state, url = published
    keys = jwks_of(tmp_path, "refuge-liege")
    state.document = orjson.dumps({"keys": keys[:2]})
    clock = Clock()
    source = JwksSource({"refuge-liege": url}, refresh_seconds=60, clock=clock, sleep=clock.sleep)
    try:
        assert source.refresh() is True and len(source.keys()) == 2
        clock.now += 29
        assert source.refresh() is False and state.asked == 1, "fresh for its max-age (30 s)"
        clock.now += 2
        state.document = orjson.dumps({"keys": keys})
        assert source.refresh() is True and state.asked == 2 and len(source.keys()) == 3

        state.cache_control = "max-age=86400"
        clock.now += 31
        source.refresh()
        clock.now += 61
        source.refresh()
        assert state.asked == 4, "never kept beyond the service's own refresh period (60 s)"

        state.status = 503
        clock.now += 61
        assert source.refresh() is False and len(source.keys()) == 3, "the last good set stays"
        assert source.version == 2
    finally:
        source.close()


def test_an_unknown_key_id_fetches_its_owner_again_waiting_only_if_asked_just_before(
    tmp_path: Path, published: tuple[Published, str]
) -> None:
    state, url = published
    state.document = orjson.dumps({"keys": jwks_of(tmp_path, "refuge-liege")})
    clock = Clock()
    source = JwksSource({"refuge-liege": url}, refresh_seconds=60, clock=clock, sleep=clock.sleep)
    try:
        source.refresh()
        clock.now += 0.25
        source.refresh(owner="refuge-liege", wait=False)  # a request's token: no waiting
        assert state.asked == 1 and clock.slept == []
        source.refresh(owner="refuge-liege")  # an event: waits out the rest, then asks
        assert state.asked == 2 and clock.slept == [pytest.approx(MIN_REFETCH_SECONDS - 0.25)]
        clock.now += 5
        source.refresh(owner="refuge-liege", wait=False)
        source.refresh(owner="someone-else")  # not fetched from anywhere
        assert state.asked == 3 and len(clock.slept) == 1
    finally:
        source.close()
