"""Ceilings: consent can only narrow what a sector may receive, never widen it."""

from __future__ import annotations

import pytest

from maillage.core.messaging.envelope import new_subject_ref
from tests.support import (
    ALL_EIGHT,
    CATEGORIES,
    Pole,
    categories_in,
    consent,
    decided,
    has_event,
    received,
    refer,
)

pytestmark = pytest.mark.integration

EVERY_PURPOSE = ["referral", "safety_planning", "risk_assessment", "case_conference"]
VICTIM_WHEREABOUTS = [b"Rue du Refuge", b"+32 470 12 34 56", b"amina@example.org"]


async def start(pole: Pole) -> None:
    await pole.start_gateway()
    await pole.start_agency("refuge-liege")
    await pole.start_agency("praxis-meuse")


@pytest.mark.parametrize("named_as", ["praxis-meuse", "perpetrator_support"])
async def test_perpetrator_programme_never_receives_victim_location_or_contact(
    pole: Pole,
    named_as: str,
) -> None:
    await start(pole)
    victim = new_subject_ref()
    await consent(pole, "refuge-liege", victim, to=[named_as], categories=CATEGORIES, purposes=EVERY_PURPOSE)

    event_id = await refer(pole, "refuge-liege", victim, to=named_as, role="victim", data=ALL_EIGHT)

    item = await received(pole, "praxis-meuse", event_id)
    assert categories_in(item["data"]) == {"risk"}
    [line] = (await decided(pole, "refuge-liege", event_id))["recipients"]
    assert (line["recipient"], line["outcome"]) == ("praxis-meuse", "filtered")
    assert line["removed"]["location"] == line["removed"]["contact"] == "above_ceiling"
    # Not only the inbox: what travels on the programme's own topic never held it either.
    [record] = await pole.read_until(pole.topics.deliver("praxis-meuse"), has_event(event_id))
    assert not [secret for secret in VICTIM_WHEREABOUTS if secret in record.value]


async def test_danger_alert_does_not_open_the_perpetrator_programme_to_victim_location(pole: Pole) -> None:
    await start(pole)
    victim = new_subject_ref()
    await consent(pole, "refuge-liege", victim, to=["praxis-meuse"], categories=CATEGORIES, purposes=EVERY_PURPOSE)

    response = await pole["refuge-liege"].post(
        "/v1/alerts",
        json={
            "subject_ref": victim,
            "subject_role": "victim",
            "severity": "imminent",
            "kind": "threat",
            "recipients": ["praxis-meuse"],
            "legal_basis": "danger",
            "justification": "He said he would find her at the shelter tonight.",
            "data": ALL_EIGHT,
        },
    )
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]

    item = await received(pole, "praxis-meuse", event_id)
    assert categories_in(item["data"]) == {"risk"}
    assert item["legal_basis"] == "consent"  # art. 458bis does not name perpetrator programmes
