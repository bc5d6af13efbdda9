"""Key store: each owner's signing (Ed25519), sealing (X25519) and token (Ed25519) keys, with rotation.

Private parts live in a private directory (files mode 0600, never in git); public parts in a public
directory, one JSON document per owner, that every service loads. An owner is an agency id or
`gateway`. Several key ids may be valid at once; the newest of each use is the one that signs or seals.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

GATEWAY = "gateway"


class KeyUse(StrEnum):
    SIGNING = "sig"
    SEALING = "enc"
    TOKENS = "tok"


class KeyError_(LookupError):
    """A key that should be there is not."""


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw_public(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _raw_private(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


@dataclass(frozen=True)
class PublicKeyInfo:
    owner: str
    kid: str
    use: KeyUse
    raw: bytes
    created: str

    def to_jwk(self) -> dict[str, str]:
        crv = "X25519" if self.use is KeyUse.SEALING else "Ed25519"
        return {"kty": "OKP", "crv": crv, "kid": self.kid, "use": self.use.value, "x": b64(self.raw),
                "owner": self.owner, "created": self.created}

    @classmethod
    def from_jwk(cls, jwk: dict[str, str]) -> PublicKeyInfo:
        return cls(owner=jwk["owner"], kid=jwk["kid"], use=KeyUse(jwk["use"]), raw=unb64(jwk["x"]),
                   created=jwk["created"])


@dataclass(frozen=True)
class KeyDirs:
    private: Path
    public: Path

    def owner_private(self, owner: str) -> Path:
        return self.private / owner

    def public_file(self, owner: str) -> Path:
        return self.public / f"{owner}.json"


def _new_kid(owner: str, use: KeyUse) -> str:
    return f"{owner}.{use.value}.{datetime.now(UTC):%Y%m%d}.{secrets.token_hex(3)}"


def write_private(path: Path, data: bytes) -> None:
    """A secret file: its directory 0700, the file 0600 from the moment it exists."""
    path.parent.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.parent.mkdir(exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def read_public(dirs: KeyDirs, owner: str) -> list[PublicKeyInfo]:
    path = dirs.public_file(owner)
    if not path.exists():
        return []
    return [PublicKeyInfo.from_jwk(k) for k in orjson.loads(path.read_bytes())["keys"]]


def _write_public(dirs: KeyDirs, owner: str, keys: list[PublicKeyInfo]) -> None:
    dirs.public.mkdir(parents=True, exist_ok=True)
    doc = {"owner": owner, "keys": [k.to_jwk() for k in keys]}
    dirs.public_file(owner).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))


def add_keys(dirs: KeyDirs, owner: str) -> list[str]:
    """Create one new key of each use for `owner`; the older ones stay valid until retired."""
    created = datetime.now(UTC).isoformat()
    keys = read_public(dirs, owner)
    kids = []
    for use in KeyUse:
        kid = _new_kid(owner, use)
        private: Ed25519PrivateKey | X25519PrivateKey = (
            X25519PrivateKey.generate() if use is KeyUse.SEALING else Ed25519PrivateKey.generate())
        write_private(dirs.owner_private(owner) / f"{kid}.key", _raw_private(private))
        keys.append(PublicKeyInfo(owner=owner, kid=kid, use=use, raw=_raw_public(private.public_key()),
                                  created=created))
        kids.append(kid)
    _write_public(dirs, owner, keys)
    return kids


def ensure_keys(dirs: KeyDirs, owners: list[str]) -> list[str]:
    """Create keys for every owner that has none yet; returns the owners created."""
    missing = [o for o in owners if not read_public(dirs, o)]
    for owner in missing:
        add_keys(dirs, owner)
    return missing


def retire_key(dirs: KeyDirs, owner: str, kid: str) -> None:
    keys = read_public(dirs, owner)
    remaining = [k for k in keys if k.kid != kid]
    if len(remaining) == len(keys):
        raise KeyError_(f"{owner} has no key {kid}")
    if not any(k.use is next(x.use for x in keys if x.kid == kid) for k in remaining):
        raise KeyError_(f"{kid} is {owner}'s last key of its use; rotate before retiring it")
    _write_public(dirs, owner, remaining)
    (dirs.owner_private(owner) / f"{kid}.key").unlink(missing_ok=True)


class PublicKeys:
    """Every owner's public keys, by key id."""

    def __init__(self, keys: list[PublicKeyInfo]) -> None:
        self.by_kid = {k.kid: k for k in keys}

    @classmethod
    def load(cls, dirs: KeyDirs) -> PublicKeys:
        found: list[PublicKeyInfo] = []
        for path in sorted(dirs.public.glob("*.json")) if dirs.public.exists() else []:
            found.extend(read_public(dirs, path.stem))
        return cls(found)

    def get(self, kid: str, *, use: KeyUse) -> PublicKeyInfo | None:
        key = self.by_kid.get(kid)
        return key if key is not None and key.use is use else None

    def current(self, owner: str, use: KeyUse) -> PublicKeyInfo:
        candidates = [k for k in self.by_kid.values() if k.owner == owner and k.use is use]
        if not candidates:
            raise KeyError_(f"no {use.name.lower()} key for {owner}")
        return max(candidates, key=lambda k: (k.created, k.kid))

    def of(self, owner: str, use: KeyUse) -> list[PublicKeyInfo]:
        return [k for k in self.by_kid.values() if k.owner == owner and k.use is use]


@dataclass(frozen=True)
class OwnKeys:
    """One owner's private keys: the newest signs and seals; every one still published can open."""

    owner: str
    signing_kid: str
    signing: Ed25519PrivateKey
    token_kid: str
    token: Ed25519PrivateKey
    sealing_kid: str
    opening: dict[str, X25519PrivateKey]

    @classmethod
    def load(cls, dirs: KeyDirs, owner: str, public: PublicKeys) -> OwnKeys:
        def private(kid: str) -> bytes:
            path = dirs.owner_private(owner) / f"{kid}.key"
            try:
                return path.read_bytes()
            except OSError:
                raise KeyError_(f"private key {kid} of {owner} is missing") from None

        sig = public.current(owner, KeyUse.SIGNING)
        tok = public.current(owner, KeyUse.TOKENS)
        enc = public.current(owner, KeyUse.SEALING)
        return cls(
            owner=owner, signing_kid=sig.kid, signing=Ed25519PrivateKey.from_private_bytes(private(sig.kid)),
            token_kid=tok.kid, token=Ed25519PrivateKey.from_private_bytes(private(tok.kid)),
            sealing_kid=enc.kid,
            opening={k.kid: X25519PrivateKey.from_private_bytes(private(k.kid))
                     for k in public.of(owner, KeyUse.SEALING)})
