"""Secrets a service hands out once and keeps only as salted hashes (clients' secrets, refresh tokens)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# scrypt's cost (RFC 7914): 16 MiB and some 50 ms per check on the development machine — paid once per token a
# client asks for (each lives an hour), and enough to make a stolen table expensive to guess from.
_N, _R, _P = 2**14, 8, 1
_MAXMEM = 64 * 1024 * 1024


def new_secret() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def check_secret(secret: str, stored: str) -> bool:
    """Whether `secret` is the one `stored` was made from, in constant time; False for a malformed `stored`."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest + "==")
        found = hashlib.scrypt(
            secret.encode(), salt=base64.urlsafe_b64decode(salt + "=="), n=int(n), r=int(r), p=int(p), maxmem=_MAXMEM
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found, expected)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
