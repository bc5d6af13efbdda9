"""Bad input gets an RFC 9457 problem body: never a 500, never personal data echoed, nothing published."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from maillage.core.messaging.envelope import new_subject_ref
from tests.support import ALL_EIGHT, Pole, assert_problem, has_event, header_of, refer

pytestmark = pytest.mark.integration

LIMIT = 64 * 1024


def referral(subject: str, **overrides: Any) -> dict[str, Any]:
    return {
        "subject_ref": subject,
        "subject_role": "victim",
        "recipient": "cpas-seraing",
        "reason": "shelter",
        "data": {"identity": {"given_name": "Amina"}},
        **overrides,
    }


def consent_body(subject: str, **overrides: Any) -> dict[str, Any]:
    return {
        "subject_ref": subject,
        "categories": ["identity"],
        "recipients": ["social"],
        "purposes": ["referral"],
        "notice_version": "2026-09",
        "notice_language": "fr",
        **overrides,
    }


def without(body: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != name}


async def in_chunks(raw: bytes, size: int = 8192) -> AsyncIterator[bytes]:
    for start in range(0, len(raw), size):
        yield raw[start : start + size]


def oversized(subject: str) -> bytes:
    padding = [{"given_name": "Noa", "birth_year": 2019}] * 3000  # valid content, just too much of it
    return orjson.dumps(referral(subject, data={"children": padding}))


# name → (path, request kwargs for a subject, expected status, expected problem type)
CASES: dict[str, tuple[str, Any, int, str]] = {
    "malformed JSON": (
        "/v1/referrals",
        lambda s: {"content": b'{"subject_ref": "' + s.encode() + b'", '},
        400,
        "malformed-json",
    ),
    "unknown sector": (
        "/v1/referrals",
        lambda s: {"json": referral(s, recipient="astrology")},
        422,
        "unknown-recipient",
    ),
    "unknown agency": (
        "/v1/referrals",
        lambda s: {"json": referral(s, recipient="refuge-bruxelles")},
        422,
        "unknown-recipient",
    ),
    "only the sender itself": (
        "/v1/referrals",
        lambda s: {"json": referral(s, recipient="refuge-liege")},
        422,
        "unknown-recipient",
    ),
    "unknown category needed": (
        "/v1/referrals",
        lambda s: {"json": referral(s, categories_needed=["religion"])},
        422,
        "validation",
    ),
    "unknown category in data": (
        "/v1/referrals",
        lambda s: {"json": referral(s, data={"religion": "x"})},
        422,
        "validation",
    ),
    "missing data": ("/v1/referrals", lambda s: {"json": without(referral(s), "data")}, 422, "validation"),
    "missing subject_role": (
        "/v1/referrals",
        lambda s: {"json": without(referral(s), "subject_role")},
        422,
        "validation",
    ),
    "not an object": ("/v1/referrals", lambda s: {"json": [referral(s)]}, 422, "validation"),
    "body over 64 KiB": ("/v1/referrals", lambda s: {"content": oversized(s)}, 413, "too-large"),
    "body over 64 KiB, streamed": ("/v1/referrals", lambda s: {"content": in_chunks(oversized(s))}, 413, "too-large"),
    "consent with an unknown category": (
        "/v1/consents",
        lambda s: {
            "json": {"subject_ref": s, "categories": ["religion"], "recipients": ["social"], "purposes": ["referral"]}
        },
        422,
        "validation",
    ),
    "consent to an unknown sector": (
        "/v1/consents",
        lambda s: {
            "json": {
                "subject_ref": s,
                "categories": ["identity"],
                "recipients": ["astrology"],
                "purposes": ["referral"],
                "notice_version": "2026-09",
                "notice_language": "fr",
            }
        },
        422,
        "unknown-recipient",
    ),
    "consent without the information notice given": (
        "/v1/consents",
        lambda s: {"json": without(consent_body(s), "notice_version")},
        422,
        "validation",
    ),
    "consent with a notice in an unknown language": (
        "/v1/consents",
        lambda s: {"json": consent_body(s, notice_language="es")},
        422,
        "validation",
    ),
    "consent naming an unknown disclosing agency": (
        "/v1/consents",
        lambda s: {"json": consent_body(s, disclosers=["refuge-bruxelles"])},
        422,
        "unknown-discloser",
    ),
    "consent naming a sector as disclosing agency": (
        "/v1/consents",
        lambda s: {"json": consent_body(s, disclosers=["police"])},
        422,
        "unknown-discloser",
    ),
    "consent without purposes": (
        "/v1/consents",
        lambda s: {"json": {"subject_ref": s, "categories": ["identity"], "recipients": ["social"]}},
        422,
        "validation",
    ),
    "alert with an unknown severity": (
        "/v1/alerts",
        lambda s: {
            "json": {
                "subject_ref": s,
                "subject_role": "victim",
                "kind": "threat",
                "severity": "apocalyptic",
                "recipients": ["police"],
                "data": {},
            }
        },
        422,
        "validation",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_request_gets_a_problem_body_and_publishes_nothing(pole: Pole, case: str) -> None:
    client = await pole.start_agency("refuge-liege")
    subject = new_subject_ref()
    path, request, status, problem_type = CASES[case]

    response = await client.post(path, headers={"Content-Type": "application/json"}, **request(subject))

    body = assert_problem(response, status)
    assert body["type"] == f"https://maillage.be/problems/{problem_type}"
    assert len(orjson.dumps(body)) < 4096
    # A good referral about the same person, after the bad request: it is all the submitted topic holds.
    marker = await refer(pole, "refuge-liege", subject, to="cpas-seraing")
    records = await pole.read_until(pole.topics.submitted, has_event(marker))
    assert [header_of(r, "ce_id") for r in records] == [marker]


async def test_validation_errors_never_echo_the_submitted_personal_data(pole: Pole) -> None:
    client = await pole.start_agency("refuge-liege")
    secrets = {
        "national_number": "8501011234",
        "phone": "+32 470 " + "9" * 300,
        "level": "Amina-is-suicidal",
        "birth_year": "born-in-Liege-1985",
        "address": {"street": "Rue Secrète 7"},
    }
    data = {
        **ALL_EIGHT,
        "identity": {**ALL_EIGHT["identity"], "national_number": secrets["national_number"]},
        "contact": {"phone": secrets["phone"]},
        "risk": {"level": secrets["level"]},
        "children": [{"given_name": "Noa", "birth_year": secrets["birth_year"]}],
        "location": {"address": secrets["address"]},
    }

    response = await client.post("/v1/referrals", json=referral(new_subject_ref(), data=data))

    body = assert_problem(response, 422)
    errors = {".".join(e["loc"][2:]) for e in body["errors"]}
    assert errors == {
        "identity.national_number",
        "contact.phone",
        "risk.level",
        "children.0.birth_year",
        "location.address",
    }
    text = response.text
    sent = [
        "8501011234",
        "9" * 50,
        "suicidal",
        "born-in-Liege",
        "Secrète",
        "Amina",
        "Testperson",
        "Rue du Refuge",
        "knife",
    ]
    leaked = [v for v in sent if v in text]
    assert leaked == []
    assert all(set(e) == {"loc", "msg", "type"} for e in body["errors"])


async def test_problem_titles_follow_the_callers_language(pole: Pole) -> None:
    client = await pole.start_agency("refuge-liege")

    headers = {"Content-Type": "application/json", "Accept-Language": "nl-BE, fr;q=0.8"}
    response = await client.post("/v1/referrals", content=b"{", headers=headers)

    assert assert_problem(response, 400)["title"] == "De inhoud is geen geldige JSON"
    assert response.headers["content-language"] == "nl"


async def test_a_problem_says_what_is_wrong_in_dutch_down_to_each_field(pole: Pole) -> None:
    client = await pole.start_agency("refuge-liege")
    dutch = {"Accept-Language": "de;q=0.5, nl;q=0.9"}
    subject = new_subject_ref()

    unknown = await client.post("/v1/referrals", json=referral(subject, recipient="astrology"), headers=dutch)
    invalid = await client.post("/v1/referrals", json=without(referral(subject), "reason"), headers=dutch)

    body = assert_problem(unknown, 422)
    assert (body["title"], body["detail"]) == (
        "Onbekende ontvanger",
        "Geen sector of organisatie van dit netwerk: astrology.",
    )
    assert unknown.headers["content-language"] == "nl"
    body = assert_problem(invalid, 422)
    assert body["detail"] == "Sommige velden ontbreken of zijn ongeldig."
    assert {(e["loc"][-1], e["msg"]) for e in body["errors"]} == {("reason", "Dit veld is verplicht.")}
    assert "Amina" not in invalid.text


async def test_a_body_that_is_not_json_gets_415_and_publishes_nothing(pole: Pole) -> None:
    client = await pole.start_agency("refuge-liege")
    subject = new_subject_ref()
    body = orjson.dumps(referral(subject))

    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        response = await client.post("/v1/referrals", content=body, headers={"Content-Type": content_type})
        problem = assert_problem(response, 415)
        assert problem["type"] == "https://maillage.be/problems/unsupported-media-type"
    french = await client.post(
        "/v1/referrals", content=body, headers={"Content-Type": "text/plain", "Accept-Language": "fr"}
    )
    assert assert_problem(french, 415)["title"] == "Envoyez du application/json"
    # The same body as JSON is accepted, and it is all the submitted topic holds.
    accepted = await client.post("/v1/referrals", content=body, headers={"Content-Type": "application/json"})
    assert accepted.status_code == 202, accepted.text
    records = await pole.read_until(pole.topics.submitted, has_event(accepted.json()["event_id"]))
    assert len(records) == 1


async def test_the_published_schema_says_what_a_subject_ref_must_be(pole: Pole) -> None:
    client = await pole.start_agency("refuge-liege")
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    for name in ("ReferralIn", "AlertIn", "ConsentIn"):
        assert schemas[name]["properties"]["subject_ref"]["pattern"] == "^s-[0-9a-f]{32}$", name
