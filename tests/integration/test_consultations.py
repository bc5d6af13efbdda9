"""Anonymous consultations: a situation put to the Pôle's desk without anyone's identity, and its answer back to
the asker alone — on a real broker and the services' real SQLite."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner, Result

from maillage.cli.main import app as cli
from maillage.core.audit import repository as audit_repository
from maillage.core.crypto.tokens import Scope
from maillage.core.messaging.envelope import Envelope, new_consultation_ref, new_subject_ref
from maillage.core.polling import eventually
from maillage.core.storage.db import make_engine, session_factory
from maillage.domain.events import ConsultationQuestion, ConsultationRequested, Identity, Risk
from maillage.domain.vocabulary import LegalBasis, Purpose, Role
from maillage.gateway.app import create_app as create_gateway_app
from tests.support import Pole, assert_problem, decided, header_of, inbox_of, listening, received

pytestmark = pytest.mark.integration

ASKER = "refuge-liege"
DESK = "pole-meuse"  # the consultation desk of both demo Pôles
SITUATION: dict[str, Any] = {
    "questions": ["severity", "dangerousness", "case_conference"],
    "children": [{"birth_year": 2019, "lives_with_subject": True}],
    "risk": {"level": "high", "factors": ["threats", "weapon"]},
    "health": {"notes": "Bruises on both arms."},
    "narrative": "A mother of one; her partner threatened her with a knife last week.",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def run_cli(*args: str, env: dict[str, str]) -> Result:
    """The `maillage` command, in a thread: it runs its own event loop."""
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env={"COLUMNS": "250", **env})


def said(result: Result) -> str:
    return " ".join(result.output.split())


def crafted(pole: Pole, payload: ConsultationRequested, *, subject_ref: str) -> Envelope:
    """A consultation its sender signed and sealed correctly, as a misbehaving partner system could."""
    return pole.trust(ASKER).sealed_event(
        payload,
        subject_ref=subject_ref,
        role=Role.VICTIM,
        basis=LegalBasis.ANONYMOUS,
        purpose=Purpose.RISK_ASSESSMENT,
        at=datetime.now(UTC),
        recipients=(DESK,),
        pole="liege",
    )


async def test_consultation_never_carries_identity_even_when_sent(pole: Pole, producer: AIOKafkaProducer) -> None:
    await pole.start_gateway()
    await pole.start_agency(DESK)
    risk = Risk(level="high", factors=("threats",))
    questions = (ConsultationQuestion.SEVERITY,)
    with_identity = crafted(
        pole,
        ConsultationRequested(questions=questions, identity=Identity(given_name="Amina"), risk=risk),
        subject_ref=new_consultation_ref(),
    )
    about_a_person = crafted(pole, ConsultationRequested(questions=questions, risk=risk), subject_ref=new_subject_ref())
    anonymous = crafted(pole, ConsultationRequested(questions=questions, risk=risk), subject_ref=new_consultation_ref())
    for envelope in (with_identity, about_a_person, anonymous):
        key, value, headers = envelope.to_kafka()
        await producer.send_and_wait(pole.topics.submitted, value, key=key, headers=headers)

    letters = await pole.read_until(pole.topics.dlq, lambda records: len(records) >= 2)
    by_event = {header_of(letter, "ce_id"): letter for letter in letters}
    assert set(by_event) == {with_identity.id, about_a_person.id}
    identified = by_event[with_identity.id]
    assert header_of(identified, "dlq_reason") == "not_anonymous"
    assert "identity" in (header_of(identified, "dlq_detail") or "")
    assert "Amina" not in (header_of(identified, "dlq_detail") or ""), "a refusal never echoes the value"
    assert header_of(by_event[about_a_person.id], "dlq_reason") == "not_anonymous"

    # The anonymous one, sent last, arrives: by then the two before it were decided, and none reached the desk.
    await received(pole, DESK, anonymous.id)
    assert [item["event_id"] for item in await inbox_of(pole[DESK])] == [anonymous.id]
    engine = make_engine(pole.gateway_settings().db_url())
    async with session_factory(engine)() as session:
        refused = [await audit_repository.of_event(session, e.id) for e in (with_identity, about_a_person)]
        [kept] = await audit_repository.of_event(session, anonymous.id)
    await engine.dispose()
    assert refused == [[], []], "nothing was disclosed of either: refused whole, never delivered stripped"
    assert (kept["recipient"], kept["legal_basis"], kept["subject_ref"]) == (DESK, "anonymous", anonymous.subject)


async def test_consultation_answer_reaches_the_asker(pole: Pole) -> None:
    url = await pole.stack.enter_async_context(listening(create_gateway_app(pole.gateway_settings())))
    asker = await pole.start_agency(ASKER)
    desk = await pole.start_agency(DESK)

    response = await asker.post("/v1/consultations", json=SITUATION)
    assert response.status_code == 202, response.text
    accepted = response.json()
    consultation_id, ref = accepted["consultation_id"], accepted["consultation_ref"]
    assert ref.startswith("c-") and accepted["desk"] == DESK
    assert (await asker.get(f"/v1/consultations/{consultation_id}")).json()["state"] == "pending"

    item = await received(pole, DESK, consultation_id)
    assert item["type"] == "maillage.consultation.requested.v1" and item["source_agency"] == ASKER
    assert item["subject_ref"] == ref and item["legal_basis"] == "anonymous"
    assert "subject_ref" not in item["data"]
    assert set(item["data"]) == {"questions", "children", "risk", "health", "narrative"}
    put_to_desk = (await desk.get(f"/v1/consultations/{consultation_id}")).json()
    assert (put_to_desk["direction"], put_to_desk["counterpart"], put_to_desk["pole"]) == ("in", ASKER, "liege")

    advice = {
        "severity": "high",
        "dangerousness": "severe",
        "advice": ["case_conference", "referral"],
        "refer_to": "police",
        "comment": "Convene a case conference this week; the weapon makes it urgent.",
    }
    assert_problem(await asker.post(f"/v1/consultations/{consultation_id}/answer", json=advice), 403)
    answered = await desk.post(f"/v1/consultations/{consultation_id}/answer", json=advice)
    assert answered.status_code == 200, answered.text
    assert assert_problem(await desk.post(f"/v1/consultations/{consultation_id}/answer", json=advice), 409)

    async def answer_seen() -> dict[str, Any] | None:
        body: dict[str, Any] = (await asker.get(f"/v1/consultations/{consultation_id}")).json()
        return body if body["state"] == "answered" else None

    seen = await eventually(answer_seen, what="the desk's answer at the asker")
    assert seen["answer"] == {**advice, "advice": ["case_conference", "referral"]}
    assert (seen["direction"], seen["counterpart"]) == ("out", DESK)
    [answer_item] = [i for i in await inbox_of(asker) if i["type"] == "maillage.consultation.answered.v1"]
    assert answer_item["source_agency"] == DESK and answer_item["subject_ref"] == ref
    assert answer_item["data"]["consultation_id"] == consultation_id
    assert answer_item["data"]["comment"] == advice["comment"]

    [line] = (await decided(pole, ASKER, consultation_id))["recipients"]
    assert (line["recipient"], line["outcome"], line["legal_basis"]) == (DESK, "delivered", "anonymous")
    env = {"MAILLAGE_TOKEN": pole.token(ASKER, (Scope.AUDIT_READ,))}
    listed = await run_cli("disclosures", ref, "--gateway", url, env=env)
    assert listed.exit_code == 0, listed.output
    assert f"Disclosures about {ref}" in said(listed) and f"({DESK})" in said(listed) and f"({ASKER})" in said(listed)
    assert "consultation.requested" in listed.output and "consultation.answered" in listed.output
    assert "anonymous" in listed.output
    async with httpx.AsyncClient(
        base_url=url, headers=bearer(pole.token("cpas-seraing", (Scope.AUDIT_READ,)))
    ) as other:
        assert (await other.get(f"/v1/disclosures/{ref}")).json()["disclosures"] == [], "not a party to it"
    verified = await run_cli("audit", "verify", "--gateway", url, env=env)
    assert verified.exit_code == 0 and "2 audit records: intact" in said(verified)


async def test_consultation_with_a_name_or_an_address_is_refused_at_the_api(pole: Pole) -> None:
    asker = await pole.start_agency(ASKER)
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"identity": {"given_name": "Amina"}}, ["identity"]),
        ({"contact": {"phone": "+32 470 12 34 56"}, "location": {"municipality": "Liège"}}, ["contact", "location"]),
        ({"subject_ref": new_subject_ref()}, ["subject_ref"]),
        ({"children": [{"birth_year": 2019}, {"given_name": "Noa"}]}, ["children[1].given_name"]),
        ({"judicial": {"case_reference": "LI.12.34.5678/26"}}, ["judicial.case_reference"]),
    ]
    for extra, fields in cases:
        response = await asker.post("/v1/consultations", json={**SITUATION, **extra}, headers={"Accept-Language": "fr"})
        problem = assert_problem(response, 422)
        assert problem["type"].endswith("/not-anonymous") and problem["fields"] == fields
        assert problem["title"].startswith("Une consultation est anonyme")
        assert not [v for v in ("Amina", "+32 470", "Noa", "LI.12") if v in response.text]
    assert (await inbox_of(asker)) == []


async def test_consultation_of_an_agency_of_two_poles_must_say_which(pole: Pole) -> None:
    both = await pole.start_agency("praxis-meuse")  # serves Liège and Namur

    ambiguous = assert_problem(await both.post("/v1/consultations", json=SITUATION), 422)
    assert ambiguous["type"].endswith("/pole-required") and ambiguous["poles"] == ["liege", "namur"]
    elsewhere = assert_problem(await both.post("/v1/consultations", json={**SITUATION, "pole": "brabant"}), 422)
    assert elsewhere["type"].endswith("/pole-required")
    chosen = await both.post("/v1/consultations", json={**SITUATION, "pole": "namur"})
    assert chosen.status_code == 202, chosen.text
    consultation = (await both.get(f"/v1/consultations/{chosen.json()['consultation_id']}")).json()
    assert (consultation["pole"], consultation["counterpart"], consultation["state"]) == ("namur", DESK, "pending")
