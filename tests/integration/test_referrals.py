"""Consented referrals from agency to agency through the consent gateway, on a real broker and real SQLite."""

from __future__ import annotations

import pytest

from maillage.core.envelope import new_subject_ref
from tests.support import Pole, eventually, fate, inbox_of

pytestmark = pytest.mark.integration

FULL_DATA = {
    "identity": {"given_name": "Amina", "family_name": "Testperson"},
    "contact": {"phone": "+32 470 00 00 00"},
    "location": {"address": "Rue du Refuge 1, 4000 Liège", "in_shelter": True},
    "risk": {"level": "high", "factors": ["threats"]},
    "narrative": "Leaves with two children; partner threatened her.",
}


async def consent(pole: Pole, agency: str, subject_ref: str, *, to: list[str], categories: list[str],
                  purposes: list[str] | None = None) -> dict:
    response = await pole[agency].post("/v1/consents", json={
        "subject_ref": subject_ref, "categories": categories, "recipients": to,
        "purposes": purposes or ["referral"]})
    assert response.status_code == 201, response.text
    return response.json()


async def refer(pole: Pole, agency: str, subject_ref: str, *, to: str, role: str = "victim",
                data: dict | None = None) -> str:
    response = await pole[agency].post("/v1/referrals", json={
        "subject_ref": subject_ref, "subject_role": role, "recipient": to, "data": data or FULL_DATA})
    assert response.status_code == 202, response.text
    return response.json()["event_id"]


async def received(pole: Pole, agency: str, event_id: str) -> dict:
    async def probe() -> dict | None:
        return next((i for i in await inbox_of(pole[agency]) if i["event_id"] == event_id), None)
    return await eventually(probe, what=f"{event_id} in {agency}'s inbox")


async def test_consented_referral_reaches_named_agency_with_exactly_permitted_fields(pole: Pole) -> None:
    await pole.start_gateway()
    await pole.start_agency("refuge-liege")
    await pole.start_agency("cpas-seraing")
    subject = new_subject_ref()
    await consent(pole, "refuge-liege", subject, to=["cpas-seraing"],
                  categories=["identity", "contact", "location", "narrative"])

    event_id = await refer(pole, "refuge-liege", subject, to="cpas-seraing")

    item = await received(pole, "cpas-seraing", event_id)
    # social's ceiling for a victim excludes location; risk was never consented.
    assert set(item["data"]) == {"identity", "contact", "narrative", "categories_needed"}
    assert item["data"]["identity"] == {"given_name": "Amina", "family_name": "Testperson"}
    outcome = await eventually(lambda: fate(pole["refuge-liege"], event_id), what="status")
    [line] = outcome["recipients"]
    assert line["recipient"] == "cpas-seraing"
    assert line["outcome"] == "filtered"
    assert line["removed"] == {"location": "above_ceiling", "risk": "not_consented"}
