"""Sealing with a content key per run of events: each event still opens alone, only for its recipient and only as
itself; the key agreement is renewed after its bounded number of events and seconds, and with the recipient's key."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from maillage.core.crypto.keys import KeyUse, PublicKeyInfo
from maillage.core.crypto.sealing import Sealer, SealError, open_sealed


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def recipient_key(owner: str, kid: str) -> tuple[PublicKeyInfo, dict[str, X25519PrivateKey]]:
    private = X25519PrivateKey.generate()
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return PublicKeyInfo(owner=owner, kid=kid, use=KeyUse.SEALING, raw=raw, created=""), {kid: private}


def epk(sealed: bytes) -> bytes:
    start = 2 + sealed[1]
    return sealed[start : start + 32]


def test_a_run_of_events_shares_one_key_agreement_and_each_opens_alone_as_itself() -> None:
    cpas, cpas_keys = recipient_key("cpas-seraing", "cpas-1")
    sealer = Sealer(max_uses=3)
    sealed = [sealer.seal(f"payload {i}".encode(), to=cpas, event_id=f"event-{i}") for i in range(4)]

    assert epk(sealed[0]) == epk(sealed[1]) == epk(sealed[2]) != epk(sealed[3])  # renewed after 3 events
    for i in reversed(range(4)):  # any order, each by itself
        assert (
            open_sealed(sealed[i], keys=cpas_keys, owner="cpas-seraing", event_id=f"event-{i}")
            == f"payload {i}".encode()
        )
    # Under the shared key, a ciphertext moved onto another event, or read as another recipient, does not open.
    with pytest.raises(SealError):
        open_sealed(sealed[0], keys=cpas_keys, owner="cpas-seraing", event_id="event-1")
    with pytest.raises(SealError):
        open_sealed(sealed[0], keys=cpas_keys, owner="refuge-liege", event_id="event-0")
    assert len({s[-60:] for s in sealed}) == 4, "every event its own nonce and ciphertext"


def test_each_recipient_key_has_its_own_agreement_renewed_with_time_and_with_the_key() -> None:
    clock = Clock()
    sealer = Sealer(max_uses=1000, max_seconds=60, clock=clock)
    cpas, cpas_keys = recipient_key("cpas-seraing", "cpas-1")
    refuge, refuge_keys = recipient_key("refuge-liege", "refuge-1")

    first = sealer.seal(b"a", to=cpas, event_id="e1")
    other = sealer.seal(b"b", to=refuge, event_id="e2")
    assert epk(first) != epk(other)
    with pytest.raises(SealError):
        open_sealed(other, keys={"refuge-1": cpas_keys["cpas-1"]}, owner="refuge-liege", event_id="e2")
    assert open_sealed(other, keys=refuge_keys, owner="refuge-liege", event_id="e2") == b"b"

    clock.now = 59.9
    assert epk(sealer.seal(b"c", to=cpas, event_id="e3")) == epk(first)
    clock.now = 60.0
    assert epk(sealer.seal(b"d", to=cpas, event_id="e4")) != epk(first)

    rotated, rotated_keys = recipient_key("cpas-seraing", "cpas-2")
    sealed = sealer.seal(b"e", to=rotated, event_id="e5")
    assert sealed[2 : 2 + sealed[1]] == b"cpas-2"
    assert open_sealed(sealed, keys=cpas_keys | rotated_keys, owner="cpas-seraing", event_id="e5") == b"e"
