"""Partner systems get an agency's tokens with OAuth 2.0 client credentials — registered with `maillage clients`,
secrets kept hashed, the acting professional stated per request — on a real broker and the agency's database."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from maillage.cli.main import app as cli
from maillage.core.crypto.tokens import ACTING_STAFF_HEADER, Principal, agency_audience, staff_ref, verify_token
from maillage.core.messaging.envelope import new_subject_ref
from maillage.core.storage.db import make_engine
from tests.support import ALL_EIGHT, NOTICE_VERSION, Pole, assert_problem

pytestmark = [pytest.mark.integration, pytest.mark.postgresql]

AGENCY = "refuge-liege"
# The service on this machine's loopback, as a partner system on it would ask (authlib refuses plain HTTP
# elsewhere: token requests travel over TLS).
TOKEN_URL = "http://127.0.0.1/oauth/token"


async def run_cli(*args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env={"COLUMNS": "250"})


async def registered(pole: Pole, *scopes: str) -> tuple[str, str]:
    """A system registered at the agency with `maillage clients add`: its id and its secret, as printed."""
    options = [item for scope in scopes for item in ("--scope", scope)]
    database = pole.database_url(f"agency-{AGENCY}")
    result = await run_cli(
        "clients", "add", "--agency", AGENCY, "--name", "Dossier social", *options, "--database", database
    )
    assert result.exit_code == 0, result.output
    client_id = re.search(r"client_id:\s+(\S+)", result.output)
    secret = re.search(r"client_secret:\s+(\S+)", result.output)
    assert client_id and secret, result.output
    return client_id.group(1), secret.group(1)


def consent_body(subject_ref: str) -> dict[str, Any]:
    return {
        "subject_ref": subject_ref,
        "categories": ["identity", "contact"],
        "recipients": ["cpas-seraing"],
        "purposes": ["referral"],
        "notice_version": NOTICE_VERSION,
        "notice_language": "fr",
    }


async def test_a_registered_system_gets_a_token_and_states_who_acts(pole: Pole) -> None:
    agency = await pole.start_agency(AGENCY)
    client_id, secret = await registered(pole, "consent:write", "events:write")
    stored = await pole_secret_hashes(pole)
    assert secret not in stored and all(h.startswith("scrypt$") for h in stored), "only a hash is kept"

    answer = await agency.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        headers={"Authorization": ""},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["scope"] == "consent:write events:write"
    principal = verify_token(body["access_token"], keys=pole.trust(AGENCY).public, audience=agency_audience(AGENCY))
    assert (principal.subject, principal.client_id, principal.agency) == (client_id, client_id, AGENCY)

    as_system = {"Authorization": f"Bearer {body['access_token']}"}
    nobody = await agency.post("/v1/consents", json=consent_body(new_subject_ref()), headers=as_system)
    problem = assert_problem(nobody, 422)
    assert problem["type"].endswith("/acting-staff-required") and ACTING_STAFF_HEADER in problem["detail"]
    malformed = await agency.post(
        "/v1/consents",
        json=consent_body(new_subject_ref()),
        headers={**as_system, ACTING_STAFF_HEADER: "Jeanne Dupont"},
    )
    assert_problem(malformed, 422)

    acting = {**as_system, ACTING_STAFF_HEADER: "staff-0042"}
    made = await agency.post("/v1/consents", json=consent_body(new_subject_ref()), headers=acting)
    assert made.status_code == 201, made.text
    who = Principal(agency=AGENCY, subject=client_id, scopes=frozenset(), client_id=client_id, acting="staff-0042")
    assert made.json()["obtained_by"] == staff_ref(who) != staff_ref(Principal(AGENCY, client_id, frozenset()))

    # What names no person needs no one named: a referral.
    referral = await agency.post(
        "/v1/referrals",
        json={
            "subject_ref": new_subject_ref(),
            "subject_role": "victim",
            "recipient": "cpas-seraing",
            "reason": "psychological_support",
            "data": ALL_EIGHT,
        },
        headers=as_system,
    )
    assert referral.status_code == 202, referral.text


async def test_wrong_credentials_a_revoked_system_and_malformed_requests_get_clear_answers(pole: Pole) -> None:
    agency = await pole.start_agency(AGENCY)
    client_id, secret = await registered(pole, "inbox:read")
    form = {"grant_type": "client_credentials"}
    no_bearer = {"Authorization": ""}

    async def ask(**options: Any) -> httpx.Response:
        return await agency.post(TOKEN_URL, **{"headers": no_bearer, **options})

    by_post = await ask(data={**form, "client_id": client_id, "client_secret": secret})
    assert by_post.status_code == 200 and by_post.json()["scope"] == "inbox:read"
    narrower = await ask(data={**form, "scope": "inbox:read audit:read"}, auth=(client_id, secret))
    assert narrower.json()["scope"] == "inbox:read", "never more than it was registered for"
    # PostgreSQL refuses a NUL in text: an id that cannot be one of ours is unknown, never asked of the database.
    for wrong in [
        (client_id, "not-the-secret"),
        ("refuge-liege.000000000000", secret),
        ("a\x00b", secret),
        ("x" * 5000, secret),
    ]:
        refused = await ask(data=form, auth=wrong)
        body = assert_problem(refused, 401)
        assert body["error"] == "invalid_client" and refused.headers["WWW-Authenticate"].startswith("Basic")
        assert secret not in refused.text
    assert assert_problem(await ask(data={"grant_type": "password"}, auth=(client_id, secret)), 400)["error"] == (
        "unsupported_grant_type"
    )
    assert assert_problem(await ask(data={**form, "scope": "audit:read"}, auth=(client_id, secret)), 400)["error"] == (
        "invalid_scope"
    )
    by_post_nul = await ask(data={**form, "client_id": "\x00", "client_secret": secret})
    assert assert_problem(by_post_nul, 400)["error"] == "invalid_client", "400 without an Authorization header"
    assert_problem(await ask(json=form, auth=(client_id, secret)), 415)
    plain = await agency.post("http://agency/oauth/token", data=form, auth=(client_id, secret), headers=no_bearer)
    assert "TLS" in assert_problem(plain, 400)["detail"], "plain HTTP beyond loopback is refused"
    assert_problem(
        await ask(
            content=b"\xff\xfe",
            auth=(client_id, secret),
            headers={**no_bearer, "Content-Type": "application/x-www-form-urlencoded"},
        ),
        400,
    )

    revoked = await run_cli(
        "clients", "revoke", client_id, "--agency", AGENCY, "--database", pole.database_url(f"agency-{AGENCY}")
    )
    assert revoked.exit_code == 0, revoked.output
    assert assert_problem(await ask(data=form, auth=(client_id, secret)), 401)["error"] == "invalid_client"
    listed = await run_cli("clients", "list", "--agency", AGENCY, "--database", pole.database_url(f"agency-{AGENCY}"))
    assert client_id in listed.output and secret not in listed.output


async def pole_secret_hashes(pole: Pole) -> list[str]:
    from sqlalchemy import text

    engine = make_engine(pole.database_url(f"agency-{AGENCY}"))
    try:
        async with engine.connect() as conn:
            return [row[0] for row in (await conn.execute(text("SELECT secret_hash FROM oauth_client"))).all()]
    finally:
        await engine.dispose()
