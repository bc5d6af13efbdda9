"""Key store: each owner's signing (Ed25519), sealing (X25519) and token (Ed25519) keys, with rotation.

Private parts live in a private directory (files mode 0600, never in git); public parts in a public
directory, one JSON document per owner, that every service loads. An owner is an agency id or
`gateway`. Several key ids may be valid at once; the newest of each use is the one that signs or seals.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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
        return {
            "kty": "OKP",
            "crv": crv,
            "kid": self.kid,
            "use": self.use.value,
            "x": b64(self.raw),
            "owner": self.owner,
            "created": self.created,
        }

    @classmethod
    def from_jwk(cls, jwk: dict[str, str]) -> PublicKeyInfo:
        return cls(
            owner=jwk["owner"], kid=jwk["kid"], use=KeyUse(jwk["use"]), raw=unb64(jwk["x"]), created=jwk["created"]
        )


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


def ensure_secret(path: Path, make: Callable[[], str]) -> str:
    """The secret kept in `path` (mode 0600), made with `make` the first time. Several processes may start
    at once: the file appears whole or not at all, and the first one to appear is everyone's."""
    if not path.exists():
        staging = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
        write_private(staging, make().encode())
        try:
            os.link(staging, path)
        except FileExistsError:
            pass
        finally:
            staging.unlink()
    return path.read_text().strip()


def read_public(dirs: KeyDirs, owner: str) -> list[PublicKeyInfo]:
    path = dirs.public_file(owner)
    if not path.exists():
        return []
    return [PublicKeyInfo.from_jwk(k) for k in orjson.loads(path.read_bytes())["keys"]]


def _write_public(dirs: KeyDirs, owner: str, keys: list[PublicKeyInfo]) -> None:
    dirs.public.mkdir(parents=True, exist_ok=True)
    doc = {"owner": owner, "keys": [k.to_jwk() for k in keys]}
    dirs.public_file(owner).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))


ALL_USES: tuple[KeyUse, ...] = tuple(KeyUse)
TOKENS_ONLY: tuple[KeyUse, ...] = (KeyUse.TOKENS,)


def add_keys(dirs: KeyDirs, owner: str, uses: tuple[KeyUse, ...] | None = None) -> list[str]:
    """Create one new key of each use `owner` has (all three unless it has fewer already, or `uses` says);
    the older ones stay valid until retired."""
    created = datetime.now(UTC).isoformat()
    keys = read_public(dirs, owner)
    if uses is None:
        uses = tuple(u for u in KeyUse if any(k.use is u for k in keys)) or ALL_USES
    kids = []
    for use in uses:
        kid = _new_kid(owner, use)
        private: Ed25519PrivateKey | X25519PrivateKey = (
            X25519PrivateKey.generate() if use is KeyUse.SEALING else Ed25519PrivateKey.generate()
        )
        write_private(dirs.owner_private(owner) / f"{kid}.key", _raw_private(private))
        keys.append(
            PublicKeyInfo(owner=owner, kid=kid, use=use, raw=_raw_public(private.public_key()), created=created)
        )
        kids.append(kid)
    _write_public(dirs, owner, keys)
    return kids


def ensure_keys(dirs: KeyDirs, owners: Mapping[str, tuple[KeyUse, ...]]) -> list[str]:
    """Create keys (of the uses given for each) for every owner that has none yet; returns the owners created."""
    missing = [o for o in owners if not read_public(dirs, o)]
    for owner in missing:
        add_keys(dirs, owner, owners[owner])
    return missing


def read_private(dirs: KeyDirs, owner: str, kid: str) -> bytes:
    """The raw bytes of `owner`'s private key `kid`; KeyError_ if it is not in the directory."""
    try:
        return (dirs.owner_private(owner) / f"{kid}.key").read_bytes()
    except OSError:
        raise KeyError_(f"private key {kid} of {owner} is missing") from None


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
        # Each owner's keys of each use, newest last: sealing a share looks its recipient's keys up, and a network
        # of all Wallonia's Pôles holds hundreds of owners' keys, which a search would read for every share.
        by_owner: dict[tuple[str, KeyUse], list[PublicKeyInfo]] = {}
        for key in sorted(self.by_kid.values(), key=lambda k: (k.created, k.kid)):
            by_owner.setdefault((key.owner, key.use), []).append(key)
        self._by_owner = {found: tuple(keys) for found, keys in by_owner.items()}

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
        """The owner's newest key of this use."""
        keys = self._by_owner.get((owner, use))
        if not keys:
            raise KeyError_(f"no {use.name.lower()} key for {owner}")
        return keys[-1]

    def of(self, owner: str, use: KeyUse) -> list[PublicKeyInfo]:
        """The owner's keys of this use, oldest first."""
        return list(self._by_owner.get((owner, use), ()))


@dataclass(frozen=True)
class OwnKeys:
    """One owner's private keys, of the uses it was loaded for: the newest signs and seals; every sealing
    key still published can open. A service that acts for an owner loads only what it needs (the
    dispatcher signs and opens for the agencies it serves, but must never mint their tokens)."""

    owner: str
    signing_kid: str = ""
    token_kid: str = ""
    sealing_kid: str = ""
    opening: dict[str, X25519PrivateKey] = field(default_factory=dict)
    _signing: Ed25519PrivateKey | None = None
    _token: Ed25519PrivateKey | None = None

    @property
    def signing(self) -> Ed25519PrivateKey:
        if self._signing is None:
            raise KeyError_(f"{self.owner}'s signing key is not loaded here")
        return self._signing

    @property
    def token(self) -> Ed25519PrivateKey:
        if self._token is None:
            raise KeyError_(f"{self.owner}'s token key is not loaded here")
        return self._token

    @classmethod
    def load(
        cls, dirs: KeyDirs, owner: str, public: PublicKeys, *, uses: frozenset[KeyUse] = frozenset(KeyUse)
    ) -> OwnKeys:
        def private(kid: str) -> bytes:
            return read_private(dirs, owner, kid)

        def newest(use: KeyUse) -> str:
            return public.current(owner, use).kid if use in uses and public.of(owner, use) else ""

        if not any(public.of(owner, use) for use in uses):
            raise KeyError_(f"no key for {owner}")
        sig, tok, enc = newest(KeyUse.SIGNING), newest(KeyUse.TOKENS), newest(KeyUse.SEALING)
        return cls(
            owner=owner,
            signing_kid=sig,
            token_kid=tok,
            sealing_kid=enc,
            _signing=Ed25519PrivateKey.from_private_bytes(private(sig)) if sig else None,
            _token=Ed25519PrivateKey.from_private_bytes(private(tok)) if tok else None,
            opening={
                k.kid: X25519PrivateKey.from_private_bytes(private(k.kid)) for k in public.of(owner, KeyUse.SEALING)
            }
            if enc
            else {},
        )
