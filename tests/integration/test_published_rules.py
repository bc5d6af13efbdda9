"""The agency's published OpenAPI says what the service checks: a body the schema calls valid is not refused as
invalid, and a body the service refuses as invalid breaks the published schema (rules between fields included)."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from maillage.core.messaging.envelope import new_subject_ref
from tests.support import ALL_EIGHT, Pole

pytestmark = pytest.mark.integration


def referral() -> dict[str, Any]:
    return {
        "subject_ref": new_subject_ref(),
        "subject_role": "victim",
        "recipient": "police",
        "reason": "psychological_support",
        "data": ALL_EIGHT,
    }


def alert() -> dict[str, Any]:
    return {
        "subject_ref": new_subject_ref(),
        "subject_role": "victim",
        "severity": "high",
        "kind": "threat",
        "recipients": ["police"],
        "data": ALL_EIGHT,
    }


# (path, body, whether the published schema and the service accept it)
CASES = [
    ("/v1/referrals", {**referral(), "reason": "other"}, False),
    ("/v1/referrals", {**referral(), "reason": "other", "reason_comment": None}, False),
    ("/v1/referrals", {**referral(), "reason": "other", "reason_comment": " \u3000\n"}, False),
    ("/v1/referrals", {**referral(), "reason": "other", "reason_comment": "Housing paperwork."}, True),
    ("/v1/alerts", {**alert(), "legal_basis": "danger"}, False),
    ("/v1/alerts", {**alert(), "legal_basis": "danger", "justification": "He showed a gun."}, True),
    ("/v1/alerts", {**alert(), "legal_basis": "legal_obligation", "recipients": ["zp-meuse"]}, False),
]


def published(document: dict[str, Any], name: str) -> jsonschema_rs.Draft202012Validator:
    """The component's schema as the OpenAPI (3.1: JSON Schema 2020-12) publishes it."""
    return jsonschema_rs.Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    )


async def test_the_published_schema_says_which_fields_a_choice_requires(pole: Pole) -> None:
    client = await pole.start_agency("refuge-liege")
    document = (await client.get("/openapi.json")).json()
    schemas = {"/v1/referrals": published(document, "ReferralIn"), "/v1/alerts": published(document, "AlertIn")}
    for path, body, valid in CASES:
        assert schemas[path].is_valid(body) is valid, (path, body)
        response = await client.post(path, json=body)
        assert (response.status_code == 422) is not valid, (path, body, response.text)
    answer = published(document, "ConsultationAnswerIn")
    base = {"severity": "high", "dangerousness": "high"}
    assert answer.is_valid({**base, "advice": ["referral"], "refer_to": "housing"})
    assert not answer.is_valid({**base, "advice": ["referral"]})
    assert not answer.is_valid({**base, "advice": ["safety_plan"], "refer_to": "housing"})
    response = published(document, "ReferralResponseIn")
    assert not response.is_valid({"decision": "declined"})
    assert response.is_valid({"decision": "declined", "decline_reason": next(iter(decline_reasons(document)))})


def decline_reasons(document: dict[str, Any]) -> list[str]:
    return list(document["components"]["schemas"]["DeclineReason"]["enum"])
