"""Case conferences (art. 458ter): only participants receive under one, only about its subjects, only while it is
open; convening, closing and every disclosure under it are in the audit chain and the disclosure report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import orjson
import pytest

from maillage.core.crypto.tokens import Scope
from maillage.core.messaging.envelope import Envelope, conference_ref, new_subject_ref
from maillage.core.polling import eventually
from maillage.domain.events import (
    CaseConferenceClosed,
    CaseConferenceConvened,
    ConferencePurpose,
    Identity,
    ReferralCreated,
    ReferralReason,
)
from maillage.domain.vocabulary import LegalBasis, Purpose, Role
from maillage.gateway.outgoing import Outgoing, Share
from tests.support import ALL_EIGHT, Pole, assert_problem, categories_in, decided, deciding, inbox_of, received

pytestmark = pytest.mark.integration

CONVENER = "pole-meuse"
PARTICIPANTS = ["refuge-liege", "zp-meuse", "sos-enfants"]
POLICE_FOR_A_VICTIM = {"identity", "contact", "location", "children", "risk", "judicial"}


async def start(pole: Pole, *agencies: str) -> httpx.AsyncClient:
    gateway = await pole.start_gateway()
    for agency in (CONVENER, *PARTICIPANTS, *agencies):
        await pole.start_agency(agency)
    return gateway


async def convene(pole: Pole, *subjects: str, participants: list[str] | None = None) -> dict[str, Any]:
    response = await pole[CONVENER].post(
        "/v1/case-conferences",
        json={
            "authorisation": "PG Liege 2026/88",
            "purpose": "safety_planning",
            "participants": participants or PARTICIPANTS,
            "subjects": list(subjects),
            "ends_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        },
    )
    assert response.status_code == 201, response.text
    conference: dict[str, Any] = response.json()
    # Once a participant has it, the gateway has it: what is sent under it from now on is decided against it.
    await received(pole, PARTICIPANTS[0], conference["event_id"])
    return conference


async def alert_under(
    pole: Pole, conference: dict[str, Any], subject: str, *, to: list[str], by: str = "refuge-liege"
) -> str:
    response = await pole[by].post(
        "/v1/alerts",
        json={
            "subject_ref": subject,
            "subject_role": "victim",
            "severity": "high",
            "kind": "threat",
            "recipients": to,
            "legal_basis": "case_conference",
            "conference_id": conference["conference_id"],
            "data": ALL_EIGHT,
        },
    )
    assert response.status_code == 202, response.text
    return str(response.json()["event_id"])


def outcomes(fate: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {line["recipient"]: (line["outcome"], line["reason"]) for line in fate["recipients"]}


async def test_non_participant_never_receives_case_conference_disclosure(pole: Pole) -> None:
    await start(pole, "cpas-seraing")
    subject = new_subject_ref()  # no consent registered: the conference is the basis
    conference = await convene(pole, subject)

    event_id = await alert_under(pole, conference, subject, to=["zp-meuse", "cpas-seraing"])

    item = await received(pole, "zp-meuse", event_id)
    assert item["legal_basis"] == "case_conference"
    assert categories_in(item["data"]) == POLICE_FOR_A_VICTIM  # the ceiling still holds
    fate = await decided(pole, "refuge-liege", event_id)
    assert outcomes(fate) == {"zp-meuse": ("filtered", None), "cpas-seraing": ("denied", "not_a_participant")}
    assert event_id not in {i["event_id"] for i in await inbox_of(pole["cpas-seraing"])}
    assert conference["event_id"] not in {i["event_id"] for i in await inbox_of(pole["cpas-seraing"])}
    for participant in PARTICIPANTS:
        seen = (await pole[participant].get(f"/v1/case-conferences/{conference['conference_id']}")).json()
        assert (seen["state"], seen["subjects"], seen["convener"]) == ("open", [subject], CONVENER)
    assert (await pole["cpas-seraing"].get(f"/v1/case-conferences/{conference['conference_id']}")).status_code == 404


async def test_case_conference_disclosure_stops_when_closed(pole: Pole) -> None:
    gateway = await start(pole)
    subject = new_subject_ref()
    conference = await convene(pole, subject)
    before = await alert_under(pole, conference, subject, to=["zp-meuse"])
    await received(pole, "zp-meuse", before)

    closing = await pole[CONVENER].post(f"/v1/case-conferences/{conference['conference_id']}/close")
    assert closing.status_code == 200 and closing.json()["state"] == "closed"
    await _closing_seen(pole, "refuge-liege", conference)
    after = await alert_under(pole, conference, subject, to=["zp-meuse"])

    assert outcomes(await decided(pole, "refuge-liege", after)) == {"zp-meuse": ("denied", "conference_closed")}
    assert after not in {i["event_id"] for i in await inbox_of(pole["zp-meuse"])}
    seen = (await pole["refuge-liege"].get(f"/v1/case-conferences/{conference['conference_id']}")).json()
    assert seen["state"] == "closed"
    # Convened, disclosed under, closed: each in the convener's and the sender's reports about the person.
    convener_report = await _report(gateway, pole, CONVENER, subject)
    assert {(line["event_type"], line["recipient"]) for line in convener_report} >= {
        ("maillage.case_conference.convened.v1", "zp-meuse"),
        ("maillage.case_conference.closed.v1", "zp-meuse"),
    }
    [disclosed] = await _report(gateway, pole, "refuge-liege", subject)
    assert (disclosed["event_id"], disclosed["conference_id"]) == (before, conference["conference_id"])
    assert all(line["conference_id"] == conference["conference_id"] for line in convener_report)
    verified = (await gateway.get("/v1/audit/verify", headers=_auditor(pole, CONVENER))).json()
    assert verified["intact"] is True


async def test_case_conference_never_discloses_about_a_subject_outside_it(pole: Pole) -> None:
    await start(pole)
    subject, someone_else = new_subject_ref(), new_subject_ref()
    conference = await convene(pole, subject)

    event_id = await alert_under(pole, conference, someone_else, to=["zp-meuse"])

    assert outcomes(await decided(pole, "refuge-liege", event_id)) == {
        "zp-meuse": ("denied", "subject_not_in_conference")
    }
    assert event_id not in {i["event_id"] for i in await inbox_of(pole["zp-meuse"])}


async def test_non_participant_cannot_send_under_a_case_conference(pole: Pole) -> None:
    await start(pole, "cpas-seraing")
    subject = new_subject_ref()
    conference = await convene(pole, subject)

    event_id = await alert_under(pole, conference, subject, to=["zp-meuse"], by="cpas-seraing")

    assert outcomes(await decided(pole, "cpas-seraing", event_id)) == {
        "zp-meuse": ("denied", "sender_not_a_participant")
    }


async def test_only_an_authorised_agency_convenes_and_only_agencies_of_the_network_take_part(pole: Pole) -> None:
    await pole.start_agency(CONVENER)
    refuge = await pole.start_agency("refuge-liege")
    body = {
        "authorisation": "PG Liege 2026/88",
        "purpose": "risk_assessment",
        "participants": ["zp-meuse"],
        "subjects": [new_subject_ref()],
        "ends_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
    }

    not_authorised = assert_problem(await refuge.post("/v1/case-conferences", json=body), 403)
    stranger = await pole[CONVENER].post("/v1/case-conferences", json={**body, "participants": ["zp-nowhere"]})
    sector = await pole[CONVENER].post("/v1/case-conferences", json={**body, "participants": ["police"]})
    past = await pole[CONVENER].post(
        "/v1/case-conferences", json={**body, "ends_at": (datetime.now(UTC) - timedelta(days=1)).isoformat()}
    )

    assert not_authorised["type"].endswith("/not-a-convener")
    assert assert_problem(stranger, 422)["type"].endswith("/unknown-recipient")
    assert assert_problem(sector, 422)["type"].endswith("/unknown-recipient")
    assert_problem(past, 422)
    unknown = await pole[CONVENER].get("/v1/case-conferences/00000000-0000-4000-8000-000000000000")
    assert_problem(unknown, 404)


async def test_case_conference_basis_needs_its_conference_id(pole: Pole) -> None:
    client = await pole.start_agency("refuge-liege")
    body = {
        "subject_ref": new_subject_ref(),
        "subject_role": "victim",
        "recipient": "zp-meuse",
        "reason": "shelter",
        "legal_basis": "case_conference",
        "data": ALL_EIGHT,
    }

    problem = assert_problem(await client.post("/v1/referrals", json=body), 422)

    assert problem["type"].endswith("/grounds-required")


async def _closing_seen(pole: Pole, agency: str, conference: dict[str, Any]) -> dict[str, Any]:
    """The conference's closing in a participant's inbox, once it has arrived."""

    async def probe() -> dict[str, Any] | None:
        return next(
            (
                item
                for item in await inbox_of(pole[agency])
                if item["type"] == "maillage.case_conference.closed.v1"
                and item["data"]["conference_id"] == conference["conference_id"]
            ),
            None,
        )

    return await eventually(probe, what=f"the conference's closing in {agency}'s inbox")


def _auditor(pole: Pole, agency: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {pole.token(agency, (Scope.AUDIT_READ,))}"}


async def _report(gateway: httpx.AsyncClient, pole: Pole, agency: str, subject: str) -> list[dict[str, Any]]:
    response = await gateway.get(f"/v1/disclosures/{subject}", headers=_auditor(pole, agency))
    assert response.status_code == 200, response.text
    lines: list[dict[str, Any]] = response.json()["disclosures"]
    return lines


async def test_a_conference_convened_and_closed_through_one_gateway_holds_at_another(pole: Pole) -> None:
    """Two gateways on one database, each deciding its own partition, both started before the conference: what
    one decided about it (convened, then closed), the other decides by."""
    settings = pole.gateway_settings()
    convener, sender = pole.trust(CONVENER), pole.trust("refuge-liege")
    subject, conference_id, now = new_subject_ref(), uuid4(), datetime.now(UTC)
    announced: dict[str, Any] = {
        "subject_ref": conference_ref(str(conference_id)),
        "role": Role.OTHER,
        "basis": LegalBasis.CASE_CONFERENCE,
        "purpose": Purpose.CASE_CONFERENCE,
        "at": now,
        "recipients": tuple(PARTICIPANTS),
        "pole": settings.network.agency("zp-meuse").poles[0],
    }
    convened = CaseConferenceConvened(
        conference_id=conference_id,
        authorisation="PG Liege 2026/88",
        purpose=ConferencePurpose.SAFETY_PLANNING,
        participants=tuple(PARTICIPANTS),
        subjects=(subject,),
        ends_at=now + timedelta(days=30),
    )

    def referral_under_it() -> Envelope:
        return sender.sealed_event(
            ReferralCreated(
                identity=Identity(given_name="Amina"), reason=ReferralReason.SHELTER, conference_id=conference_id
            ),
            subject_ref=subject,
            role=Role.VICTIM,
            basis=LegalBasis.CASE_CONFERENCE,
            purpose=Purpose.REFERRAL,
            at=now,
            recipients=("zp-meuse",),
            pole="liege",
        )

    async with deciding(pole) as first, deciding(pole) as second:
        await first.process(first.records([convener.sealed_event(convened, **announced)], partition=0))
        while_open = await second.process(second.records([referral_under_it()], partition=1))
        closed = CaseConferenceClosed(conference_id=conference_id)
        await first.process(first.records([convener.sealed_event(closed, **announced)], partition=0))
        once_closed = await second.process(second.records([referral_under_it()], partition=1))

    assert [o.envelope.recipient for o in while_open if isinstance(o, Share)] == ["zp-meuse"]
    assert not [o for o in once_closed if isinstance(o, Share)]
    status = settings.topics.status("refuge-liege")
    [told] = [orjson.loads(o.value) for o in once_closed if isinstance(o, Outgoing) and o.topic == status]
    assert outcomes(told) == {"zp-meuse": ("denied", "conference_closed")}
