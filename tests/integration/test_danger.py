"""Art. 458bis: a danger alert reaches the sectors the rule opens without consent, with the danger categories
only, and every such disclosure is marked for review."""

from __future__ import annotations

from typing import Any

import pytest

from maillage.core.messaging.envelope import new_subject_ref
from tests.support import (
    ALL_EIGHT,
    Pole,
    assert_problem,
    categories_in,
    decided,
    has_event,
    inbox_of,
    received,
)

pytestmark = [pytest.mark.integration, pytest.mark.postgresql]

DANGER_CATEGORIES = {"identity", "contact", "location", "children", "risk"}
JUSTIFICATION = "He was released this morning and texted that he is on his way to her flat."


async def raise_alert(
    pole: Pole, subject: str, *, to: list[str], data: dict[str, Any] | None = None, **fields: Any
) -> Any:
    body = {
        "subject_ref": subject,
        "subject_role": "victim",
        "severity": "imminent",
        "kind": "custody_release",
        "recipients": to,
        "legal_basis": "danger",
        "justification": JUSTIFICATION,
        "data": ALL_EIGHT if data is None else data,
        **fields,
    }
    return await pole["refuge-liege"].post("/v1/alerts", json=body)


async def test_danger_alert_reaches_police_without_consent_with_danger_categories_only(pole: Pole) -> None:
    await pole.start_gateway()
    await pole.start_agency("refuge-liege")
    await pole.start_agency("zp-meuse")
    subject = new_subject_ref()

    response = await raise_alert(pole, subject, to=["police"])

    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    item = await received(pole, "zp-meuse", event_id)
    assert categories_in(item["data"]) == DANGER_CATEGORIES  # judicial (above the rule) and the rest removed
    assert "justification" not in item["data"]
    assert (item["legal_basis"], item["data"]["severity"]) == ("danger", "imminent")
    [line] = (await decided(pole, "refuge-liege", event_id))["recipients"]
    assert (line["recipient"], line["legal_basis"], line["review"]) == ("zp-meuse", "danger", True)
    assert set(line["delivered"]) == DANGER_CATEGORIES
    assert line["removed"]["judicial"] == "outside_danger_rule"


async def test_danger_alert_opens_child_protection_only_when_children_are_concerned(pole: Pole) -> None:
    await pole.start_gateway()
    await pole.start_agency("refuge-liege")
    await pole.start_agency("sos-enfants")
    await pole.start_agency("chr-citadelle")
    subject = new_subject_ref()
    without_children = {k: v for k, v in ALL_EIGHT.items() if k != "children"}

    to = ["child_protection", "health"]
    first = (await raise_alert(pole, subject, to=to, data=without_children)).json()
    second = (await raise_alert(pole, subject, to=to)).json()

    item = await received(pole, "sos-enfants", second["event_id"])
    # child_protection's ceiling for a victim: identity, contact, children, risk — location stays home.
    assert categories_in(item["data"]) == {"identity", "contact", "children", "risk"}
    lines = (await decided(pole, "refuge-liege", second["event_id"]))["recipients"]
    by_recipient = {line["recipient"]: line for line in lines}
    assert by_recipient["sos-enfants"]["review"] is True
    assert (by_recipient["chr-citadelle"]["outcome"], by_recipient["chr-citadelle"]["reason"]) == (
        "denied",
        "no_consent",
    )  # the danger rule does not name hospitals
    [denied] = [
        line
        for line in (await decided(pole, "refuge-liege", first["event_id"]))["recipients"]
        if line["recipient"] == "sos-enfants"
    ]
    assert (denied["outcome"], denied["legal_basis"], denied["review"]) == ("denied", "consent", False)
    assert first["event_id"] not in {i["event_id"] for i in await inbox_of(pole["sos-enfants"])}
    assert await inbox_of(pole["chr-citadelle"]) == []


async def test_danger_alert_without_justification_is_refused_and_not_published(pole: Pole) -> None:
    await pole.start_agency("refuge-liege")
    subject = new_subject_ref()

    response = await raise_alert(pole, subject, to=["police"], justification=None)

    assert "458bis" in assert_problem(response, 422)["detail"]
    accepted = await raise_alert(pole, subject, to=["police"])
    marker = accepted.json()["event_id"]
    records = await pole.read_until(pole.topics.submitted, has_event(marker))
    assert len(records) == 1
