"""A consent belongs to the agency that obtained it: it records who obtained it and which information notice the
person received, and it allows that agency's disclosures, and those of the partners the person named, only."""

from __future__ import annotations

from typing import Any

import pytest

from maillage.core.crypto.tokens import ALL_AGENCY_SCOPES, Principal, Scope, staff_ref
from maillage.core.messaging.envelope import new_subject_ref
from tests.support import NOTICE_VERSION, Pole, consent, decided, received, refer

pytestmark = pytest.mark.integration

HEALTH_DATA = {"identity": {"given_name": "Amina"}, "health": {"notes": "Bruises on both arms."}}


def staff_of(agency: str) -> str:
    """The pseudonymous reference of the partner system behind `pole.token(agency)`."""
    return staff_ref(Principal(agency=agency, subject=f"{agency}-case-system", scopes=frozenset(ALL_AGENCY_SCOPES)))


async def consents_of(pole: Pole, agency: str, subject: str) -> list[dict[str, Any]]:
    response = await pole[agency].get("/v1/consents", params={"subject_ref": subject})
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()
    return listed


async def disclosures_report(pole: Pole, gateway: Any, subject: str, *, by: str) -> list[dict[str, Any]]:
    token = pole.token(by, (Scope.AUDIT_READ,))
    response = await gateway.get(f"/v1/disclosures/{subject}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    lines: list[dict[str, Any]] = response.json()["disclosures"]
    return lines


async def test_consent_obtained_by_refuge_does_not_widen_cpas_disclosures(pole: Pole) -> None:
    await pole.start_gateway()
    for agency in ("refuge-liege", "cpas-seraing", "chr-citadelle"):
        await pole.start_agency(agency)
    subject = new_subject_ref()
    granted = await consent(pole, "refuge-liege", subject, to=["chr-citadelle"], categories=["identity", "health"])

    from_cpas = await refer(pole, "cpas-seraing", subject, to="chr-citadelle", data=HEALTH_DATA)
    from_refuge = await refer(pole, "refuge-liege", subject, to="chr-citadelle", data=HEALTH_DATA)

    [line] = (await decided(pole, "cpas-seraing", from_cpas))["recipients"]
    assert (line["recipient"], line["outcome"], line["reason"]) == ("chr-citadelle", "denied", "no_consent")
    item = await received(pole, "chr-citadelle", from_refuge)
    assert set(item["data"]) >= {"identity", "health"}
    assert from_cpas not in {i["event_id"] for i in (await pole["chr-citadelle"].get("/v1/inbox")).json()["items"]}
    [listed] = await consents_of(pole, "refuge-liege", subject)
    assert listed["consent_id"] == granted["consent_id"]
    assert listed["disclosers"] == ["refuge-liege"], "by default, only the agency that obtained it discloses"
    assert (listed["obtained_by"], listed["notice_version"], listed["notice_language"]) == (
        staff_of("refuge-liege"),
        NOTICE_VERSION,
        "fr",
    )


async def test_consent_naming_a_partner_lets_that_partner_disclose_under_it(pole: Pole) -> None:
    gateway = await pole.start_gateway()
    for agency in ("refuge-liege", "cpas-seraing", "chr-citadelle", "parquet-liege"):
        await pole.start_agency(agency)
    subject = new_subject_ref()
    granted = await consent(
        pole,
        "refuge-liege",
        subject,
        to=["chr-citadelle"],
        categories=["identity", "health"],
        disclosers=["cpas-seraing"],
    )
    # Two agencies' relays publish independently: the partner refers once the gateway holds the consent.
    await decided(pole, "refuge-liege", granted["event_id"])

    from_cpas = await refer(pole, "cpas-seraing", subject, to="chr-citadelle", data=HEALTH_DATA)
    from_parquet = await refer(pole, "parquet-liege", subject, to="chr-citadelle", data=HEALTH_DATA)

    item = await received(pole, "chr-citadelle", from_cpas)
    assert item["data"]["health"] == HEALTH_DATA["health"]
    [line] = (await decided(pole, "parquet-liege", from_parquet))["recipients"]
    assert (line["outcome"], line["reason"]) == ("denied", "no_consent"), "a partner the person did not name"
    [listed] = await consents_of(pole, "refuge-liege", subject)
    assert listed["disclosers"] == ["refuge-liege", "cpas-seraing"]
    assert listed["obtained_by"] == staff_of("refuge-liege") and listed["notice_version"] == NOTICE_VERSION
    # The disclosure keeps which consent it rested on: what a withdrawal of that consent follows.
    [disclosed] = await disclosures_report(pole, gateway, subject, by="cpas-seraing")
    assert (disclosed["event_id"], disclosed["consents"]) == (from_cpas, [granted["consent_id"]])
