"""Territories: a sector addressed means that sector's agencies in the event's Pôle, never the whole network."""

from __future__ import annotations

from typing import Any

import pytest

from maillage.core.messaging.envelope import new_subject_ref
from tests.support import ALL_EIGHT, Pole, assert_problem, consent, decided, inbox_of, received, refer

pytestmark = pytest.mark.integration

JUSTIFICATION = "He was released this morning and texted that he is on his way to her flat."


def danger_alert(subject: str, **fields: Any) -> dict[str, Any]:
    return {
        "subject_ref": subject,
        "subject_role": "victim",
        "severity": "imminent",
        "kind": "custody_release",
        "recipients": ["police"],
        "legal_basis": "danger",
        "justification": JUSTIFICATION,
        "data": ALL_EIGHT,
        **fields,
    }


async def test_danger_alert_reaches_only_the_pole_of_the_sender(pole: Pole) -> None:
    await pole.start_gateway()
    await pole.start_agency("refuge-liege")  # serves Liège
    await pole.start_agency("ecoute-namur")  # serves Namur
    await pole.start_agency("zp-meuse")  # the police of Liège
    await pole.start_agency("zp-namur")  # the police of Namur

    from_liege = (await pole["refuge-liege"].post("/v1/alerts", json=danger_alert(new_subject_ref()))).json()
    from_namur = (await pole["ecoute-namur"].post("/v1/alerts", json=danger_alert(new_subject_ref()))).json()

    await received(pole, "zp-meuse", from_liege["event_id"])
    await received(pole, "zp-namur", from_namur["event_id"])
    liege_lines = (await decided(pole, "refuge-liege", from_liege["event_id"]))["recipients"]
    namur_lines = (await decided(pole, "ecoute-namur", from_namur["event_id"]))["recipients"]
    assert [line["recipient"] for line in liege_lines] == ["zp-meuse"]
    assert [line["recipient"] for line in namur_lines] == ["zp-namur"]
    assert from_liege["event_id"] not in {i["event_id"] for i in await inbox_of(pole["zp-namur"])}
    assert from_namur["event_id"] not in {i["event_id"] for i in await inbox_of(pole["zp-meuse"])}


async def test_sender_of_several_poles_must_say_which_when_it_addresses_a_sector(pole: Pole) -> None:
    await pole.start_gateway()
    await pole.start_agency("praxis-meuse")  # serves Liège and Namur
    await pole.start_agency("zp-namur")
    subject = new_subject_ref()

    ambiguous = await pole["praxis-meuse"].post("/v1/alerts", json=danger_alert(subject))
    named = await pole["praxis-meuse"].post("/v1/alerts", json=danger_alert(subject, pole="namur"))

    problem = assert_problem(ambiguous, 422)
    assert problem["type"].endswith("/pole-required") and problem["poles"] == ["liege", "namur"]
    assert named.status_code == 202, named.text
    [line] = (await decided(pole, "praxis-meuse", named.json()["event_id"]))["recipients"]
    assert line["recipient"] == "zp-namur"


async def test_sender_cannot_place_its_event_in_a_pole_it_does_not_serve(pole: Pole) -> None:
    client = await pole.start_agency("refuge-liege")

    response = await client.post("/v1/alerts", json=danger_alert(new_subject_ref(), pole="namur"))

    problem = assert_problem(response, 422)
    assert problem["type"].endswith("/pole-required")
    assert "Amina" not in response.text


async def test_agency_of_another_pole_is_still_reached_by_name(pole: Pole) -> None:
    await pole.start_gateway()
    await pole.start_agency("refuge-liege")
    await pole.start_agency("ecoute-namur")
    subject = new_subject_ref()
    await consent(pole, "refuge-liege", subject, to=["ecoute-namur"], categories=["identity"])

    event_id = await refer(pole, "refuge-liege", subject, to="ecoute-namur")

    item = await received(pole, "ecoute-namur", event_id)
    assert set(item["data"]) >= {"identity", "reason"}
