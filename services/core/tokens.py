"""Bearer tokens (pyjwt, EdDSA): minted with an owner's token key, verified against the public key store."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from maillage.core.keys import KeyUse, OwnKeys, PublicKeys

AUDIENCE = "urn:maillage:api"
ISSUER_PREFIX = "urn:maillage:issuer:"
MAX_LIFETIME = timedelta(hours=1)
LEEWAY = timedelta(seconds=30)


class Scope(StrEnum):
    EVENTS_WRITE = "events:write"
    INBOX_READ = "inbox:read"
    CONSENT_WRITE = "consent:write"
    ALERTS_ACK = "alerts:ack"
    MONITOR_READ = "monitor:read"
    MONITOR_ACT = "monitor:act"
    AUDIT_READ = "audit:read"
    SUBJECT_ERASE = "subject:erase"
    WEBHOOKS_MANAGE = "webhooks:manage"


class TokenError(ValueError):
    """The token is not acceptable (→ 401); the message never contains the token."""


@dataclass(frozen=True)
class Principal:
    agency: str
    subject: str
    scopes: frozenset[Scope]
    kid: str = ""
    expires_at: float = 0.0


def staff_ref(principal: Principal) -> str:
    """A pseudonymous reference of the person (or system) behind a token: enough to tell two people
    apart for a four-eyes review, never their name."""
    return hashlib.sha256(f"{principal.agency}:{principal.subject}".encode()).hexdigest()[:16]


def issuer_of(owner: str) -> str:
    return ISSUER_PREFIX + owner


def mint(keys: OwnKeys, *, subject: str, scopes: Iterable[Scope], lifetime: timedelta = MAX_LIFETIME,
         now: datetime | None = None) -> str:
    issued = now or datetime.now(UTC)
    claims = {"iss": issuer_of(keys.owner), "sub": subject, "aud": AUDIENCE, "agency": keys.owner,
              "iat": issued, "nbf": issued, "exp": issued + min(lifetime, MAX_LIFETIME),
              "scope": " ".join(sorted(Scope(s).value for s in scopes))}
    return jwt.encode(claims, keys.token, algorithm="EdDSA", headers={"kid": keys.token_kid})


def verify_token(token: str, *, keys: PublicKeys) -> Principal:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenError("malformed token") from None
    if header.get("alg") != "EdDSA":
        raise TokenError("unsupported algorithm")
    info = keys.get(str(header.get("kid", "")), use=KeyUse.TOKENS)
    if info is None:
        raise TokenError("unknown key id")
    try:
        claims = jwt.decode(
            token, Ed25519PublicKey.from_public_bytes(info.raw), algorithms=["EdDSA"], audience=AUDIENCE,
            issuer=issuer_of(info.owner), leeway=LEEWAY,
            options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub"]})
    except jwt.PyJWTError as exc:
        raise TokenError(type(exc).__name__) from None
    if claims["exp"] - claims["iat"] > MAX_LIFETIME.total_seconds():
        raise TokenError("lifetime over one hour")
    if claims.get("agency") != info.owner:
        raise TokenError("agency claim does not match the issuing key")
    try:
        scopes = frozenset(Scope(s) for s in str(claims.get("scope", "")).split())
    except ValueError:
        raise TokenError("unknown scope") from None
    return Principal(agency=info.owner, subject=str(claims["sub"]), scopes=scopes, kid=info.kid,
                     expires_at=float(claims["exp"]))


ALL_AGENCY_SCOPES = (Scope.EVENTS_WRITE, Scope.INBOX_READ, Scope.CONSENT_WRITE)
