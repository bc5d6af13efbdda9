"""Other owners' public keys, fetched from their JWKS URLs (the network file): no folder shared between machines.

Each owner named with a URL is fetched when its set is stale — after the `Cache-Control: max-age` its answer
gave, bounded by the service's refresh period, so a retired key is refused within that bound — and again,
at most every `MIN_REFETCH_SECONDS`, when something arrives signed with a key id not yet known (a rotation
at the owner). A failed fetch keeps the last good set. A document only ever gives keys of the owner it is
configured for: one agency's server cannot slip in a key in another's name.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from maillage.core.crypto.keys import KeyUse, PublicKeyInfo, unb64
from maillage.core.crypto.network_ca import client_context

log = logging.getLogger(__name__)

# An unknown key id makes its owner's set fetched again at once, unless it was asked less than this ago: then
# after the rest of this wait (a key made just after the last fetch must still be found), never more often.
MIN_REFETCH_SECONDS = 1.0
MAX_DOCUMENT_BYTES = 256 * 1024
_CURVES = {KeyUse.SIGNING: "Ed25519", KeyUse.TOKENS: "Ed25519", KeyUse.SEALING: "X25519"}


class JwksError(ValueError):
    """A JWKS document that cannot be used: the message names the owner and why, never a key."""


@dataclass
class _Fetched:
    keys: tuple[PublicKeyInfo, ...] = ()
    etag: str | None = None
    fresh_until: float = 0.0  # monotonic
    tried_at: float = float("-inf")  # monotonic: the last attempt, good or not
    ok: bool = False


class JwksSource:
    """The public keys of the owners named with a JWKS URL, cached. Thread-safe: the gateway verifies in
    threads, the services' key watcher fetches in one."""

    def __init__(
        self,
        urls: Mapping[str, str],
        *,
        refresh_seconds: float,
        ca_file: Path | None = None,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.urls = dict(urls)
        self.refresh_seconds = refresh_seconds
        self._clock, self._sleep = clock, sleep
        verify: ssl.SSLContext = client_context(ca_file)
        # No proxy from the environment, no redirect: the URL the network file names is the one asked.
        self._client = httpx.Client(
            timeout=timeout, trust_env=False, follow_redirects=False, verify=verify, transport=transport
        )
        self._cache = {owner: _Fetched() for owner in self.urls}
        self._lock = threading.Lock()
        self.version = 0  # counts the changes of any owner's set

    def keys(self) -> list[PublicKeyInfo]:
        return [key for fetched in self._cache.values() for key in fetched.keys]

    def known(self, owner: str) -> bool:
        """Whether a set of `owner`'s keys was had at least once."""
        return self._cache[owner].ok if owner in self._cache else False

    def refresh(self, *, owner: str | None = None, wait: bool = True) -> bool:
        """Fetch every stale set, and `owner`'s (one of its key ids is unknown here: a rotation at the owner),
        waiting first for the rest of MIN_REFETCH_SECONDS if it was asked less than that ago; True if any set
        changed. Without `wait`, `owner`'s set is fetched only if that needs no waiting (a request's token:
        whoever sends tokens with made-up key ids must not make the service wait)."""
        with self._lock:
            now = self._clock()
            due = [o for o, f in self._cache.items() if now >= f.fresh_until]
            if owner in self._cache and owner not in due:
                pause = MIN_REFETCH_SECONDS - (now - self._cache[owner].tried_at)
                if pause <= 0 or wait:
                    if pause > 0:
                        self._sleep(pause)
                        now = self._clock()
                    due.append(owner)
            changed = any([self._fetch(o, now=now) for o in due])
            self.version += changed
            return changed

    def close(self) -> None:
        self._client.close()

    def _fetch(self, owner: str, *, now: float) -> bool:
        cached = self._cache[owner]
        cached.tried_at = now
        headers = {"Accept": "application/json"}
        if cached.etag and cached.ok:
            headers["If-None-Match"] = cached.etag
        try:
            response = self._client.get(self.urls[owner], headers=headers)
            if response.status_code == 304 and cached.ok:
                cached.fresh_until = now + self._max_age(response)
                return False
            response.raise_for_status()
            if len(response.content) > MAX_DOCUMENT_BYTES:
                raise JwksError(f"{owner}'s JWKS document is larger than {MAX_DOCUMENT_BYTES} bytes")
            keys = parse_jwks(response.json(), owner=owner)
        except (httpx.HTTPError, ValueError) as exc:  # JwksError and a JSON error are ValueErrors
            # Tried again at the next refresh, or sooner on an unknown key id; the last good set stays.
            cached.fresh_until = now + min(self.refresh_seconds, MIN_REFETCH_SECONDS)
            log.warning(
                "public keys not fetched, the last ones kept",
                extra={"owner": owner, "error": type(exc).__name__, "detail": str(exc)[:200]},
            )
            return False
        changed = not cached.ok or {k.kid for k in keys} != {k.kid for k in cached.keys}
        cached.keys, cached.ok = keys, True
        cached.etag = response.headers.get("ETag")
        cached.fresh_until = now + self._max_age(response)
        if changed:
            log.info("public keys fetched", extra={"owner": owner, "keys": len(keys)})
        return changed

    def _max_age(self, response: httpx.Response) -> float:
        """How long the answer may be kept: its max-age, never beyond the service's refresh period."""
        for directive in response.headers.get("Cache-Control", "").split(","):
            name, _, value = directive.strip().partition("=")
            if name.lower() == "no-store" or name.lower() == "no-cache":
                return 0.0
            if name.lower() == "max-age" and value.isdigit():
                return min(float(value), self.refresh_seconds)
        return self.refresh_seconds


def parse_jwks(document: Any, *, owner: str) -> tuple[PublicKeyInfo, ...]:
    """`owner`'s keys in a JWKS document; a key of another owner, or of a kind Maillage does not use, is left
    out (and logged), a document without a usable key is refused."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError(f"{owner}'s JWKS document has no `keys` list")
    found = []
    for jwk in document["keys"]:
        try:
            key = _key(jwk, owner=owner)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("a key of a JWKS document left out", extra={"owner": owner, "why": str(exc)[:200]})
            continue
        found.append(key)
    if not found:
        raise JwksError(f"{owner}'s JWKS document holds no key of {owner}'s")
    return tuple(found)


def _key(jwk: Any, *, owner: str) -> PublicKeyInfo:
    if not isinstance(jwk, dict):
        raise TypeError("not an object")
    if jwk.get("owner") != owner:
        raise ValueError(f"a key in the name of {str(jwk.get('owner'))[:40]!r}, not of {owner!r}")
    if not str(jwk.get("kid", "")).startswith(f"{owner}."):
        raise ValueError("a key id not in its owner's name")  # it could shadow another owner's key id
    use = KeyUse(jwk["use"])
    if jwk.get("kty") != "OKP" or jwk.get("crv") != _CURVES[use]:
        raise ValueError(f"not an {_CURVES[use]} key")
    if len(unb64(str(jwk["x"]))) != 32:
        raise ValueError("not a 32-byte public key")
    return PublicKeyInfo.from_jwk({name: str(value) for name, value in jwk.items()})
