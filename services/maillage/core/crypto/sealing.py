"""Sealed data: a payload encrypted to one recipient's X25519 key (ephemeral ECDH, HKDF-SHA256, AES-256-GCM).

Layout: version byte, key-id length byte, key id, 32-byte ephemeral public key, 12-byte nonce,
ciphertext with its tag. The associated data binds the ciphertext to its event id and recipient,
so a sealed payload cannot be moved onto another event.

A key agreement costs more than the rest of sealing together (an X25519 key pair and exchange, ~65 µs, and
~50 µs to open, against a few µs of AES-GCM). A `Sealer` therefore uses one ephemeral key per recipient key
for a bounded run of events (at most `max_uses` events and `max_seconds`): those events share a content key,
each under its own random nonce and with its own event id and recipient in its associated data — the
"per-batch content key" of issue 15, in the same layout, so every reader opens them as before and each event
still opens alone. Opening keeps the content keys of recent ephemeral keys (`_content_key`), so a run of
events sealed together costs one exchange to open.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from maillage.core.crypto.keys import PublicKeyInfo

VERSION = 1
INFO = b"maillage-seal-v1"


class SealError(ValueError):
    """The data cannot be opened: wrong key, altered, or not sealed data."""


def _key(shared: bytes, *, epk: bytes, recipient_pk: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=epk + recipient_pk, info=INFO).derive(shared)


def _aad(event_id: str, recipient: str) -> bytes:
    return f"{event_id}|{recipient}".encode()


@dataclass
class _Agreement:
    """An ephemeral key agreed with one recipient key: its public half and the content key derived."""

    epk: bytes
    content: AESGCM
    expires: float
    uses: int = 0


class Sealer:
    """Seals payloads, one ephemeral key agreement per recipient key for at most `max_uses` events and
    `max_seconds` (see the module). Safe to share between threads (the gateway's crypto threads)."""

    def __init__(
        self, *, max_uses: int = 1000, max_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        # Random 96-bit nonces under one AES-GCM key stay far from their bound (2^32 messages) at these counts.
        self.max_uses, self.max_seconds, self.clock = max_uses, max_seconds, clock
        self._agreements: dict[tuple[str, bytes], _Agreement] = {}
        self._lock = threading.Lock()

    def seal(self, plaintext: bytes, *, to: PublicKeyInfo, event_id: str) -> bytes:
        agreement = self._agreement(to)
        nonce = os.urandom(12)
        ciphertext = agreement.content.encrypt(nonce, plaintext, _aad(event_id, to.owner))
        kid = to.kid.encode()
        return bytes([VERSION, len(kid)]) + kid + agreement.epk + nonce + ciphertext

    def _agreement(self, to: PublicKeyInfo) -> _Agreement:
        now = self.clock()
        with self._lock:
            agreement = self._agreements.get((to.kid, to.raw))
            if agreement is None or agreement.uses >= self.max_uses or now >= agreement.expires:
                agreement = self._agreements[(to.kid, to.raw)] = _agree(to, expires=now + self.max_seconds)
            agreement.uses += 1
            return agreement


def _agree(to: PublicKeyInfo, *, expires: float) -> _Agreement:
    ephemeral = X25519PrivateKey.generate()
    epk = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(to.raw))
    return _Agreement(epk=epk, content=AESGCM(_key(shared, epk=epk, recipient_pk=to.raw)), expires=expires)


def sealed_kid(sealed: bytes) -> str:
    if len(sealed) < 2 or sealed[0] != VERSION:
        raise SealError("not sealed data")
    return sealed[2 : 2 + sealed[1]].decode(errors="replace")


def open_sealed(sealed: bytes, *, keys: dict[str, X25519PrivateKey], owner: str, event_id: str) -> bytes:
    kid = sealed_kid(sealed)
    private = keys.get(kid)
    if private is None:
        raise SealError("sealed to a key this service does not hold")
    start = 2 + sealed[1]
    epk, nonce, ciphertext = sealed[start : start + 32], sealed[start + 32 : start + 44], sealed[start + 44 :]
    try:
        return _content_key(private, epk).decrypt(nonce, ciphertext, _aad(event_id, owner))
    except (InvalidTag, ValueError):
        raise SealError("the sealed data does not open") from None


@lru_cache(maxsize=1024)
def _content_key(private: X25519PrivateKey, epk: bytes) -> AESGCM:
    # The events a sender sealed under one ephemeral key open with one exchange (a refused epk raises ValueError,
    # which is not kept).
    shared = private.exchange(X25519PublicKey.from_public_bytes(epk))
    return AESGCM(_key(shared, epk=epk, recipient_pk=_public_bytes(private)))


@lru_cache(maxsize=64)
def _public_bytes(private: X25519PrivateKey) -> bytes:
    # Deriving a public key is a scalar multiplication: once per key, not once per event opened.
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
