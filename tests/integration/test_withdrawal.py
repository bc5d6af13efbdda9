"""Withdrawing a consent stops every disclosure the gateway decides after it."""

from __future__ import annotations

import pytest

from maillage.core.messaging.envelope import new_subject_ref
from tests.support import Pole, consent, decided, inbox_of, received, refer

pytestmark = [pytest.mark.integration, pytest.mark.postgresql]

SOME_DATA = {"identity": {"given_name": "Amina"}, "contact": {"phone": "+32 470 12 34 56"}}


async def test_referral_after_withdrawal_is_denied_while_the_one_before_was_delivered(pole: Pole) -> None:
    await pole.start_gateway()
    await pole.start_agency("refuge-liege")
    await pole.start_agency("cpas-seraing")
    subject = new_subject_ref()
    granted = await consent(pole, "refuge-liege", subject, to=["cpas-seraing"], categories=["identity", "contact"])
    before_id = await refer(pole, "refuge-liege", subject, to="cpas-seraing", data=SOME_DATA)

    withdrawn = await pole["refuge-liege"].post(f"/v1/consents/{granted['consent_id']}/withdraw")
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["withdrawn_at"] is not None
    after_id = await refer(pole, "refuge-liege", subject, to="cpas-seraing", data=SOME_DATA)

    assert (await received(pole, "cpas-seraing", before_id))["data"]["contact"] == SOME_DATA["contact"]
    [line] = (await decided(pole, "refuge-liege", after_id))["recipients"]
    assert (line["outcome"], line["reason"]) == ("denied", "no_consent")
    # A fresh consent and a referral after it: that one arrives, the denied one never does.
    await consent(pole, "refuge-liege", subject, to=["cpas-seraing"], categories=["identity"])
    later_id = await refer(pole, "refuge-liege", subject, to="cpas-seraing", data=SOME_DATA)
    await received(pole, "cpas-seraing", later_id)
    inbox = {i["event_id"] for i in await inbox_of(pole["cpas-seraing"])}
    assert before_id in inbox and after_id not in inbox


async def test_withdrawing_twice_changes_nothing_and_an_unknown_consent_is_not_found(pole: Pole) -> None:
    await pole.start_agency("refuge-liege")
    granted = await consent(pole, "refuge-liege", new_subject_ref(), to=["social"], categories=["identity"])
    url = f"/v1/consents/{granted['consent_id']}/withdraw"

    first, second = await pole["refuge-liege"].post(url), await pole["refuge-liege"].post(url)

    assert first.json() == second.json()
    missing = await pole["refuge-liege"].post("/v1/consents/00000000-0000-4000-8000-000000000000/withdraw")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
