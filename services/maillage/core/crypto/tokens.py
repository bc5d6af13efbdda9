"""Bearer tokens (pyjwt, EdDSA): minted with an owner's token key, verified against the public key store."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from maillage.core.crypto.keys import KeyUse, OwnKeys, PublicKeys

ISSUER_PREFIX = "urn:maillage:issuer:"
AUDIENCE_PREFIX = "urn:maillage:"
GATEWAY_AUDIENCE = AUDIENCE_PREFIX + "gateway"
DISPATCHER_AUDIENCE = AUDIENCE_PREFIX + "dispatcher"
MONITOR_AUDIENCE = AUDIENCE_PREFIX + "monitor"
MAX_LIFETIME = timedelta(hours=1)
# What a partner system states as the acting professional: its own pseudonymous reference of the person (a
# staff number, a hash), never a name; kept only as staff_ref's hash of it.
ACTING_STAFF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
ACTING_STAFF_HEADER = "Maillage-Acting-Staff"
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
    DISCLOSURE_REVIEW = "disclosure:review"  # a second professional reviews a danger disclosure (art. 458bis)
    ONCALL_MANAGE = "oncall:manage"  # an agency ends its on-call workers' sessions at the dispatcher
    SUBJECT_REPORT = "subject:report"  # register a person's request for their disclosure report, and read it
    SUBJECT_REPORT_HOLD = "subject:report_hold"  # hold a person's report back: telling them now would endanger them


class TokenError(ValueError):
    """The token is not acceptable (→ 401); the message never contains the token."""


def agency_audience(agency_id: str) -> str:
    """The audience of one agency's own service: its partner systems' tokens are good there only."""
    return f"{AUDIENCE_PREFIX}agency:{agency_id}"


# Each token names the services it is for, so that a token stolen from one service (a worker's phone, a
# partner system) is worth nothing at another. Which service a scope is used at decides its audience.
_AT_GATEWAY = frozenset({"audit:read"})
_AT_DISPATCHER = frozenset({"alerts:ack", "monitor:read", "oncall:manage"})
_AT_MONITOR = frozenset({"monitor:read", "monitor:act"})


def audiences_for(owner: str, scopes: Iterable[Scope]) -> list[str]:
    """The services a token with these scopes is used at: its own agency's, the gateway, the dispatcher, the
    monitor (operators also read unanswered alerts at the dispatcher)."""
    names = {Scope(s).value for s in scopes}
    found = [agency_audience(owner)] if names - _AT_GATEWAY - _AT_DISPATCHER - _AT_MONITOR else []
    found += [GATEWAY_AUDIENCE] if names & _AT_GATEWAY else []
    found += [DISPATCHER_AUDIENCE] if names & _AT_DISPATCHER else []
    found += [MONITOR_AUDIENCE] if names & _AT_MONITOR else []
    return found


@dataclass(frozen=True)
class Principal:
    agency: str
    subject: str
    scopes: frozenset[Scope]
    kid: str = ""
    expires_at: float = 0.0
    # A client-credentials token names a system, not a person (RFC 9068's `client_id` claim): the system states
    # which professional acts, per request (`act` claim, or the Maillage-Acting-Staff header).
    client_id: str | None = None
    acting: str | None = None
    token_id: str | None = None  # `jti`: only one-time tokens carry one (an on-call sign-in invitation)

    @property
    def names_a_system(self) -> bool:
        return self.client_id is not None


def staff_ref(principal: Principal) -> str:
    """A pseudonymous reference of the person (or system) behind a token: enough to tell two people
    apart for a four-eyes review, never their name. The acting professional's, when the system named one."""
    who = principal.acting if principal.acting is not None else principal.subject
    return hashlib.sha256(f"{principal.agency}:{who}".encode()).hexdigest()[:16]


def issuer_of(owner: str) -> str:
    return ISSUER_PREFIX + owner


def mint(
    keys: OwnKeys,
    *,
    subject: str,
    scopes: Iterable[Scope],
    lifetime: timedelta = MAX_LIFETIME,
    now: datetime | None = None,
    audience: str | list[str] | None = None,
    client_id: str | None = None,
    acting: str | None = None,
    token_id: str | None = None,
) -> str:
    """A token of `keys.owner` for `subject`; its audience is the services its scopes are used at, unless named.
    `client_id`: issued to a registered system (the subject is then the client); `acting`: the professional it
    acts for (RFC 8693's `act` claim)."""
    issued = now or datetime.now(UTC)
    chosen = tuple(scopes)
    claims: dict[str, object] = {
        "iss": issuer_of(keys.owner),
        "sub": subject,
        "agency": keys.owner,
        "aud": audience if audience is not None else audiences_for(keys.owner, chosen),
        "iat": issued,
        "nbf": issued,
        "exp": issued + min(lifetime, MAX_LIFETIME),
        "scope": " ".join(sorted(Scope(s).value for s in chosen)),
    }
    if client_id is not None:
        claims["client_id"] = client_id
    if acting is not None:
        claims["act"] = {"sub": acting}
    if token_id is not None:
        claims["jti"] = token_id
    return jwt.encode(claims, keys.token, algorithm="EdDSA", headers={"kid": keys.token_kid})


def claimed_issuer(token: str) -> str | None:
    """The agency a token says issued it, unverified: whose keys to fetch again when its key id is unknown."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    agency = claims.get("agency")
    return agency if isinstance(agency, str) else None


def verify_token(token: str, *, keys: PublicKeys, audience: str, now: float | None = None) -> Principal:
    """The token's principal, if `audience` is among its audiences and it is valid now; raises TokenError."""
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
            token,
            Ed25519PublicKey.from_public_bytes(info.raw),
            algorithms=["EdDSA"],
            audience=audience,
            issuer=issuer_of(info.owner),
            leeway=LEEWAY,
            options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise TokenError(type(exc).__name__) from None
    if claims["exp"] - claims["iat"] > MAX_LIFETIME.total_seconds():
        raise TokenError("lifetime over one hour")
    # The leeway is for clocks that disagree on when a token starts; an end is an end: a token that
    # expired a few seconds ago must not open a stream and read a snapshot of alerts.
    if claims["exp"] <= (time.time() if now is None else now):
        raise TokenError("ExpiredSignatureError")
    if claims.get("agency") != info.owner:
        raise TokenError("agency claim does not match the issuing key")
    try:
        scopes = frozenset(Scope(s) for s in str(claims.get("scope", "")).split())
    except ValueError:
        raise TokenError("unknown scope") from None
    client_id, token_id = claims.get("client_id"), claims.get("jti")
    act = claims.get("act")
    acting = act.get("sub") if isinstance(act, dict) else None
    return Principal(
        agency=info.owner,
        subject=str(claims["sub"]),
        scopes=scopes,
        kid=info.kid,
        expires_at=float(claims["exp"]),
        client_id=client_id if isinstance(client_id, str) else None,
        acting=acting if isinstance(acting, str) and ACTING_STAFF.fullmatch(acting) else None,
        token_id=token_id if isinstance(token_id, str) else None,
    )


ALL_AGENCY_SCOPES = (Scope.EVENTS_WRITE, Scope.INBOX_READ, Scope.CONSENT_WRITE)
