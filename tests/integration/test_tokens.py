"""Every API route but the probes needs a valid token of the service's own agency, with the right scope."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from maillage.core.crypto.keys import KeyUse, add_keys
from maillage.core.crypto.tokens import Scope, agency_audience, issuer_of, mint
from tests.support import Pole, assert_problem

pytestmark = pytest.mark.integration

AGENCY = "cpas-seraing"


def forged(pole: Pole, **overrides: object) -> str:
    """A token like a real one, signed with the agency's real key, with some claims changed."""
    own = pole.trust(AGENCY).own
    now = datetime.now(UTC)
    claims = {
        "iss": issuer_of(AGENCY),
        "sub": "case-system",
        "aud": agency_audience(AGENCY),
        "agency": AGENCY,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=10),
        "scope": "inbox:read",
    }
    claims.update(overrides)
    return jwt.encode(claims, own.token, algorithm="EdDSA", headers={"kid": own.token_kid})


def unsigned(pole: Pole) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": pole.trust(AGENCY).own.token_kid}
    body = {
        "iss": issuer_of(AGENCY),
        "aud": agency_audience(AGENCY),
        "agency": AGENCY,
        "sub": "x",
        "scope": "inbox:read",
        "iat": 0,
        "nbf": 0,
        "exp": 4102444800,
    }
    encode = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")  # noqa: E731
    return f"{encode(header)}.{encode(body)}."


def hs256_with_public_key_as_secret(pole: Pole) -> str:
    trust = pole.trust(AGENCY)
    public = trust.public.get(trust.own.token_kid, use=KeyUse.TOKENS)
    assert public is not None
    now = datetime.now(UTC)
    claims = {
        "iss": issuer_of(AGENCY),
        "aud": agency_audience(AGENCY),
        "agency": AGENCY,
        "sub": "x",
        "scope": "inbox:read",
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
    }
    # pyjwt refuses PEM-looking secrets for HMAC, so forge by hand, as an attacker would.
    header = {"alg": "HS256", "typ": "JWT", "kid": trust.own.token_kid}
    import hashlib
    import hmac

    def part(d: dict[str, object]) -> str:
        return (
            base64.urlsafe_b64encode(json.dumps(d, default=lambda t: int(t.timestamp())).encode()).decode().rstrip("=")
        )

    signing_input = f"{part(header)}.{part(claims)}"
    mac = hmac.new(public.raw, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


async def get_inbox(client: httpx.AsyncClient, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {"Authorization": ""}
    return await client.get("/v1/inbox", headers=headers)


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "expired",
        "not yet valid",
        "wrong audience",
        "wrong issuer",
        "unknown key id",
        "alg none",
        "hs256 with the public key as secret",
        "garbage",
        "lifetime over an hour",
    ],
)
async def test_unacceptable_token_is_refused_with_401(pole: Pole, case: str) -> None:
    client = await pole.start_agency(AGENCY)
    now = datetime.now(UTC)
    token = {
        "missing": lambda: None,
        "expired": lambda: forged(
            pole, iat=now - timedelta(hours=2), nbf=now - timedelta(hours=2), exp=now - timedelta(hours=1)
        ),
        "not yet valid": lambda: forged(pole, nbf=now + timedelta(minutes=10), exp=now + timedelta(minutes=20)),
        "wrong audience": lambda: forged(pole, aud="urn:someone:else"),
        "wrong issuer": lambda: forged(pole, iss=issuer_of("zp-meuse")),
        "unknown key id": lambda: jwt.encode(
            jwt.decode(forged(pole), options={"verify_signature": False}),
            pole.trust(AGENCY).own.token,
            algorithm="EdDSA",
            headers={"kid": "nobody.tok.1"},
        ),
        "alg none": lambda: unsigned(pole),
        "hs256 with the public key as secret": lambda: hs256_with_public_key_as_secret(pole),
        "garbage": lambda: "not-a-token",
        "lifetime over an hour": lambda: forged(pole, exp=now + timedelta(hours=3)),
    }[case]()

    response = await get_inbox(client, token)

    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_token_without_the_routes_scope_is_refused_with_403(pole: Pole) -> None:
    client = await pole.start_agency(AGENCY)
    token = pole.token(AGENCY, scopes=(Scope.INBOX_READ,))

    assert (await get_inbox(client, token)).status_code == 200
    refused = await client.post(
        "/v1/consents",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "subject_ref": "s-12345678",
            "categories": ["identity"],
            "recipients": ["police"],
            "purposes": ["referral"],
        },
    )
    body = assert_problem(refused, 403)
    assert "consent:write" in body["detail"]


async def test_one_agencys_token_never_reads_another_agencys_service(pole: Pole) -> None:
    cpas = await pole.start_agency(AGENCY)
    police_token = pole.token("zp-meuse")
    # Even minted by the police zone for the CPAS's service on purpose: the CPAS takes its own tokens only.
    aimed = mint(pole.trust("zp-meuse").own, subject="x", scopes=(Scope.INBOX_READ,), audience=agency_audience(AGENCY))

    assert "Audience" in assert_problem(await get_inbox(cpas, police_token), 401)["detail"]
    assert_problem(await get_inbox(cpas, aimed), 403)


async def test_probes_and_keys_need_no_token_and_show_only_public_keys(pole: Pole) -> None:
    client = await pole.start_agency(AGENCY)
    anonymous = {"Authorization": ""}
    assert (await client.get("/healthz", headers=anonymous)).status_code == 200
    keys = (await client.get("/.well-known/jwks.json", headers=anonymous)).json()["keys"]
    assert {k["use"] for k in keys} == {"sig", "enc", "tok"}
    assert all(set(k) == {"kty", "crv", "kid", "use", "x", "owner", "created"} for k in keys)
    assert {k["owner"] for k in keys} == {AGENCY}


async def test_rotated_token_key_old_and_new_tokens_both_accepted(pole: Pole) -> None:
    client = await pole.start_agency(AGENCY)
    old_token = pole.token(AGENCY)
    add_keys(pole.gateway_settings().key_dirs, AGENCY)
    new_own = pole.trust(AGENCY).own
    new_token = mint(new_own, subject="case-system", scopes=(Scope.INBOX_READ,))
    assert jwt.get_unverified_header(new_token)["kid"] != jwt.get_unverified_header(old_token)["kid"]

    assert (await get_inbox(client, old_token)).status_code == 200
    assert (await get_inbox(client, new_token)).status_code == 200
