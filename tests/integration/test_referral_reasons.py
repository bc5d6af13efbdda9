"""A referral carries a structured reason: the recipient reads it in its inbox and on the referral itself."""

from __future__ import annotations

import pytest

from maillage.core.messaging.envelope import new_subject_ref
from tests.support import ALL_EIGHT, Pole, assert_problem, consent, received

pytestmark = pytest.mark.integration

COMMENT = "She needs someone to go with her to the bank to open an account of her own."


async def test_referral_carries_its_reason_to_the_recipient(pole: Pole) -> None:
    await pole.start_gateway()
    await pole.start_agency("refuge-liege")
    await pole.start_agency("cpas-seraing")
    subject = new_subject_ref()
    await consent(pole, "refuge-liege", subject, to=["cpas-seraing"], categories=["identity", "narrative"])

    response = await pole["refuge-liege"].post(
        "/v1/referrals",
        json={
            "subject_ref": subject,
            "subject_role": "victim",
            "recipient": "cpas-seraing",
            "reason": "other",
            "reason_comment": COMMENT,
            "data": {"identity": ALL_EIGHT["identity"]},
        },
    )

    assert response.status_code == 202, response.text
    referral_id = response.json()["referral_id"]
    item = await received(pole, "cpas-seraing", referral_id)
    assert (item["data"]["reason"], item["data"]["reason_comment"]) == ("other", COMMENT)
    at_recipient = (await pole["cpas-seraing"].get(f"/v1/referrals/{referral_id}")).json()
    assert (at_recipient["direction"], at_recipient["reason"], at_recipient["reason_comment"]) == (
        "in",
        "other",
        COMMENT,
    )
    at_sender = (await pole["refuge-liege"].get(f"/v1/referrals/{referral_id}")).json()
    assert (at_sender["direction"], at_sender["reason"]) == ("out", "other")


async def test_referral_reason_comment_stays_home_when_narrative_is_not_consented(pole: Pole) -> None:
    await pole.start_gateway()
    await pole.start_agency("refuge-liege")
    await pole.start_agency("cpas-seraing")
    subject = new_subject_ref()
    await consent(pole, "refuge-liege", subject, to=["cpas-seraing"], categories=["identity"])

    body = {
        "subject_ref": subject,
        "subject_role": "victim",
        "recipient": "cpas-seraing",
        "reason": "financial_aid",
        "reason_comment": COMMENT,
        "data": {"identity": ALL_EIGHT["identity"]},
    }
    referral_id = (await pole["refuge-liege"].post("/v1/referrals", json=body)).json()["referral_id"]

    item = await received(pole, "cpas-seraing", referral_id)
    assert item["data"]["reason"] == "financial_aid"
    assert "reason_comment" not in item["data"]
    at_recipient = (await pole["cpas-seraing"].get(f"/v1/referrals/{referral_id}")).json()
    assert (at_recipient["reason"], at_recipient["reason_comment"]) == ("financial_aid", None)


@pytest.mark.parametrize("reason", ["other", "no_such_reason", None])
async def test_referral_without_a_known_reason_or_other_without_comment_is_refused(
    pole: Pole, reason: str | None
) -> None:
    client = await pole.start_agency("refuge-liege")
    body = {
        "subject_ref": new_subject_ref(),
        "subject_role": "victim",
        "recipient": "cpas-seraing",
        "data": {"identity": ALL_EIGHT["identity"]},
        **({"reason": reason} if reason else {}),
    }

    problem = assert_problem(await client.post("/v1/referrals", json=body), 422)

    assert "Amina" not in str(problem)
    sent = (await client.get("/v1/inbox")).json()
    assert sent["items"] == []
