"""Event signatures: Ed25519 over the RFC 8785 canonical form of the envelope's attributes and its sealed data."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from maillage.core.crypto.keys import KeyUse, PublicKeys
from maillage.domain.canonical import canonical_json


class SignatureError(ValueError):
    """Missing, unknown-key, wrong-owner or invalid signature."""


def signed_bytes(attributes: Mapping[str, str], data: bytes) -> bytes:
    """What is signed: every attribute but the signature itself, and a digest of the (sealed) data."""
    body = {k: v for k, v in attributes.items() if k != "sig"}
    body["data_sha256"] = hashlib.sha256(data).hexdigest()
    return canonical_json(body)


def sign(attributes: Mapping[str, str], data: bytes, *, key: Ed25519PrivateKey) -> str:
    return base64.urlsafe_b64encode(key.sign(signed_bytes(attributes, data))).decode().rstrip("=")


def verify(attributes: Mapping[str, str], data: bytes, *, keys: PublicKeys, signer: str) -> None:
    """Raise SignatureError unless `attributes['sig']` is `signer`'s valid signature."""
    kid, sig = attributes.get("sigkid"), attributes.get("sig")
    if not kid or not sig:
        raise SignatureError("unsigned")
    info = keys.get(kid, use=KeyUse.SIGNING)
    if info is None:
        raise SignatureError("unknown signing key")
    if info.owner != signer:
        raise SignatureError("signed by another owner than the source")
    try:
        raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
        _public_key(info.raw).verify(raw, signed_bytes(attributes, data))
    except (InvalidSignature, ValueError):
        raise SignatureError("invalid signature") from None


@lru_cache(maxsize=256)
def _public_key(raw: bytes) -> Ed25519PublicKey:
    # Loaded once per key rather than for every event verified.
    return Ed25519PublicKey.from_public_bytes(raw)
