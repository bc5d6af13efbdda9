"""Consented referrals from agency to agency through the consent gateway, on a real broker and real SQLite."""

from __future__ import annotations

import pytest

from maillage.core.messaging.envelope import new_subject_ref
from tests.support import Pole, consent, eventually, fate, received, refer

pytestmark = [pytest.mark.integration, pytest.mark.postgresql]

FULL_DATA = {
    "identity": {"given_name": "Amina", "family_name": "Testperson"},
    "contact": {"phone": "+32 470 00 00 00"},
    "location": {"address": "Rue du Refuge 1, 4000 Liège", "in_shelter": True},
    "risk": {"level": "high", "factors": ["threats"]},
    "narrative": "Leaves with two children; partner threatened her.",
}


async def test_consented_referral_reaches_named_agency_with_exactly_permitted_fields(pole: Pole) -> None:
    await pole.start_gateway()
    await pole.start_agency("refuge-liege")
    await pole.start_agency("cpas-seraing")
    subject = new_subject_ref()
    await consent(
        pole, "refuge-liege", subject, to=["cpas-seraing"], categories=["identity", "contact", "location", "narrative"]
    )

    event_id = await refer(pole, "refuge-liege", subject, to="cpas-seraing", data=FULL_DATA)

    item = await received(pole, "cpas-seraing", event_id)
    # social's ceiling for a victim excludes location; risk was never consented.
    assert set(item["data"]) == {"identity", "contact", "narrative", "categories_needed", "reason"}
    assert item["data"]["reason"] == "psychological_support", "the reason always travels"
    assert item["data"]["identity"] == {"given_name": "Amina", "family_name": "Testperson"}
    outcome = await eventually(lambda: fate(pole["refuge-liege"], event_id), what="status")
    [line] = outcome["recipients"]
    assert line["recipient"] == "cpas-seraing"
    assert line["outcome"] == "filtered"
    assert line["removed"] == {"location": "above_ceiling", "risk": "not_consented"}
