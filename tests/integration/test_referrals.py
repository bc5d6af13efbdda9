"""Consented referrals from agency to agency through the consent gateway, on a real broker and real SQLite."""

from __future__ import annotations

from typing import Any

import pytest

from maillage.core.messaging.envelope import new_subject_ref
from tests.support import Pole, assert_problem, consent, eventually, fate, received, refer

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


async def test_the_sender_lists_what_became_of_everything_it_sent_page_by_page(pole: Pole) -> None:
    sender = await pole.start_agency("refuge-liege")
    await pole.start_agency("cpas-seraing")
    subject = new_subject_ref()
    await consent(pole, "refuge-liege", subject, to=["cpas-seraing"], categories=["identity", "contact"])
    sent = [await refer(pole, "refuge-liege", subject, to="cpas-seraing") for _ in range(5)]

    async def listing(**params: str | int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = (await sender.get("/v1/events", params={"limit": 2, **params})).json()
            items.extend(page["items"])
            if page["next_cursor"] is None:
                return items
            params["cursor"] = page["next_cursor"]

    # No gateway yet: nothing decided (the consent's own event neither), every referral pending, in the order sent.
    assert [e["event_id"] for e in await listing(pending="true")][-5:] == sent
    await pole.start_gateway()
    for event_id in sent:
        await eventually(lambda event_id=event_id: fate(sender, event_id), what="status")
    assert await listing(pending="true") == []
    everything = await listing()
    assert [e["event_id"] for e in everything if e["event_id"] in sent] == sent
    for item in everything:
        single = (await sender.get(f"/v1/events/{item['event_id']}")).json()
        assert item == single, "each line as the event's own page shows it"
    assert {e["state"] for e in everything if e["event_id"] in sent} == {"decided"}
    assert_problem(await sender.get("/v1/events", params={"cursor": "%%%"}), 422)
