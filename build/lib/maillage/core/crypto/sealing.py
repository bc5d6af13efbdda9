"""Sealed data: a payload encrypted to one recipient's X25519 key (ephemeral ECDH, HKDF-SHA256, AES-256-GCM).

Layout: version byte, key-id length byte, key id, 32-byte ephemeral public key, 12-byte nonce,
ciphertext with its tag. The associated data binds the ciphertext to its event id and recipient,
so a sealed payload cannot be moved onto another event.
"""

from __future__ import annotations

import os
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


def seal(plaintext: bytes, *, to: PublicKeyInfo, event_id: str) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    epk = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(to.raw))
    nonce = os.urandom(12)
    ciphertext = AESGCM(_key(shared, epk=epk, recipient_pk=to.raw)).encrypt(nonce, plaintext, _aad(event_id, to.owner))
    kid = to.kid.encode()
    return bytes([VERSION, len(kid)]) + kid + epk + nonce + ciphertext


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
        own_pk = _public_bytes(private)
        shared = private.exchange(X25519PublicKey.from_public_bytes(epk))
        return AESGCM(_key(shared, epk=epk, recipient_pk=own_pk)).decrypt(nonce, ciphertext, _aad(event_id, owner))
    except (InvalidTag, ValueError):
        raise SealError("the sealed data does not open") from None


@lru_cache(maxsize=64)
def _public_bytes(private: X25519PrivateKey) -> bytes:
    # Deriving a public key is a scalar multiplication: once per key, not once per event opened.
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
