"""The person's disclosure report across the network: registered at an agency that holds them, drawn up by the
gateway from its audit chain, and handed back to that agency alone as a PDF and an HTML page in the person's
language; held back while another agency that holds the person says telling them now would endanger them."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import orjson
import pytest
from pypdf import PdfReader

from maillage.core.crypto.tokens import Scope
from maillage.core.messaging.envelope import new_subject_ref
from maillage.core.polling import eventually
from maillage.domain.events import (
    ConsentGranted,
    EventType,
    Identity,
    ReferralCreated,
    ReferralReason,
    SubjectReportRequested,
)
from maillage.domain.vocabulary import Category, LegalBasis, Purpose, Role
from maillage.gateway.outgoing import Outgoing, Share
from tests.support import Pole, consent, decided, deciding, inbox_of, received, refer

pytestmark = [pytest.mark.integration, pytest.mark.postgresql]

REFUGE, CPAS, SOS = "refuge-liege", "cpas-seraing", "sos-enfants"
REPORT_TYPES = {
    t.value
    for t in (EventType.SUBJECT_REPORT_REQUESTED, EventType.SUBJECT_REPORT_HELD, EventType.SUBJECT_REPORT_ISSUED)
}


def as_(pole: Pole, agency: str, *scopes: Scope) -> dict[str, str]:
    return {"Authorization": f"Bearer {pole.token(agency, scopes)}"}


async def ask_report(pole: Pole, agency: str, subject: str, *, language: str) -> dict[str, Any]:
    response = await pole[agency].post(
        f"/v1/subjects/{subject}/report-requests",
        json={"language": language},
        headers=as_(pole, agency, Scope.SUBJECT_REPORT),
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert body["state"] == "pending"
    return body


async def answered(pole: Pole, agency: str, request: dict[str, Any]) -> dict[str, Any]:
    """The request once the gateway answered it (issued, held or refused)."""

    async def probe() -> dict[str, Any] | None:
        response = await pole[agency].get(request["status_url"], headers=as_(pole, agency, Scope.SUBJECT_REPORT))
        body: dict[str, Any] = response.json()
        return body if body["state"] != "pending" else None

    return await eventually(probe, timeout=30, what=f"the answer to report request {request['request_id']}")


def of_reports(records: list[Any]) -> list[dict[str, Any]]:
    decoded = [orjson.loads(r.value) for r in records]
    return [r for r in decoded if r["event_type"] in REPORT_TYPES]


def pdf_text(pdf: bytes) -> str:
    return " ".join("\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())


async def test_the_person_gets_their_report_and_a_hold_by_another_holder_postpones_the_next(pole: Pole) -> None:
    gateway = await pole.start_gateway()
    for agency in (REFUGE, CPAS, SOS):
        await pole.start_agency(agency)
    subject = new_subject_ref()
    await consent(pole, REFUGE, subject, to=[CPAS], categories=["identity", "contact"])
    referral = await refer(pole, REFUGE, subject, to=CPAS)
    await received(pole, CPAS, referral)

    first = await ask_report(pole, REFUGE, subject, language="fr")
    issued = await answered(pole, REFUGE, first)

    assert (issued["state"], issued["disclosures"], issued["language"]) == ("issued", 1, "fr")
    read = as_(pole, REFUGE, Scope.SUBJECT_REPORT)
    pdf = await pole[REFUGE].get(issued["pdf_url"], headers=read)
    assert pdf.headers["content-type"] == "application/pdf"
    text = pdf_text(pdf.content)
    for words in (
        "Qui a reçu des informations vous concernant",
        "Refuge Rosa — Liège",
        "CPAS de Seraing (démo)",
        "Orientation : Identité, Coordonnées",
        "Votre consentement",
        "Autorité de protection des données",
    ):
        assert words in text
    page = await pole[REFUGE].get(issued["html_url"], headers=read)
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "CPAS de Seraing (démo)" in page.text and '<html lang="fr">' in page.text
    assert not [i for i in await inbox_of(pole[REFUGE]) if i["type"] in REPORT_TYPES], "never in a listing"
    without_scope = await pole[REFUGE].get(issued["pdf_url"])
    assert without_scope.status_code == 403, "a distinct scope: the inbox's token does not read the report"

    # An agency that never sent nor received anything about the person learns nothing from asking.
    refused = await answered(pole, SOS, await ask_report(pole, SOS, subject, language="nl"))
    assert (refused["state"], refused["refusal"]) == ("refused", "not_holder")

    until = datetime.now(UTC) + timedelta(days=30)
    hold = await pole[CPAS].post(
        f"/v1/subjects/{subject}/report-holds",
        json={"until": until.isoformat(), "reason": "risk_of_retaliation"},
        headers=as_(pole, CPAS, Scope.SUBJECT_REPORT_HOLD),
    )
    assert hold.status_code == 202, hold.text
    fate = await decided(pole, CPAS, hold.json()["event_id"])
    assert [r["outcome"] for r in fate["recipients"]] == ["recorded"]

    second = await answered(pole, REFUGE, await ask_report(pole, REFUGE, subject, language="de"))
    assert (second["state"], second["hold_reasons"]) == ("held", ["risk_of_retaliation"])
    assert datetime.fromisoformat(second["held_until"]) == until
    assert second["pdf_url"] is None
    assert (await pole[REFUGE].get(f"{second['status_url']}/document.pdf", headers=read)).status_code == 409

    records = await pole.read_until(pole.topics.audit, lambda rs: len(of_reports(rs)) >= 5)
    reports = sorted(of_reports(records), key=lambda r: r["seq"])  # one chain: the person's partition
    by_type = [(r["event_type"].split(".")[2], r["source"], r["outcome"]) for r in reports]
    assert by_type == [
        ("report_requested", REFUGE, "recorded"),
        ("report_issued", "gateway", "issued"),
        ("report_held", CPAS, "hold_placed"),
        ("report_requested", REFUGE, "recorded"),
        ("report_issued", "gateway", "held"),
    ], "the refused request is a dead letter, and its sender is told why"
    assert [r["report"].get("hold_check") for r in reports if "hold_check" in r["report"]] == ["clear", "held"]
    assert reports[1]["report"]["disclosures"] == 1 and reports[1]["recipient"] == REFUGE
    assert (reports[2]["reason"], reports[2]["report"]["hold_id"]) == ("risk_of_retaliation", hold.json()["hold_id"])
    assert reports[4]["report"]["reasons"] == ["risk_of_retaliation"]
    assert all(r["delivered"] == [] for r in reports), "metadata only: nothing about the person in them"
    token = {"Authorization": f"Bearer {pole.token(REFUGE, (Scope.AUDIT_READ,))}"}
    assert (await gateway.get("/v1/audit/verify", headers=token)).json()["intact"] is True
    # The agencies' own listings stay their own: the CPAS disclosed nothing, the report is no disclosure.
    cpas_token = {"Authorization": f"Bearer {pole.token(CPAS, (Scope.AUDIT_READ,))}"}
    assert (await gateway.get(f"/v1/disclosures/{subject}", headers=cpas_token)).json()["disclosures"] == []


# --- exactly once: a request decided again after its Kafka transaction aborted ---------------------------


async def test_a_request_read_again_after_an_aborted_transaction_sends_the_same_report(pole: Pole) -> None:
    settings = pole.gateway_settings()
    refuge, subject, consent_id = pole.trust(REFUGE), new_subject_ref(), uuid4()
    common: dict[str, Any] = {"subject_ref": subject, "purpose": Purpose.REFERRAL, "at": datetime.now(UTC)}
    granted = ConsentGranted(
        consent_id=consent_id, categories=(Category.IDENTITY,), recipients=(CPAS,), purposes=(Purpose.REFERRAL,)
    )
    referral = ReferralCreated(identity=Identity(given_name="Amina"), reason=ReferralReason.SHELTER)
    asked = SubjectReportRequested(request_id=uuid4(), language="nl")
    envelopes = [
        refuge.sealed_event(granted, role=Role.OTHER, basis=LegalBasis.CONSENT, **common),
        refuge.sealed_event(
            referral, role=Role.VICTIM, basis=LegalBasis.CONSENT, recipients=(CPAS,), pole="liege", **common
        ),
        refuge.sealed_event(asked, role=Role.OTHER, basis=LegalBasis.LEGAL_OBLIGATION, **common),
    ]
    async with deciding(pole) as gateway:
        records = gateway.records(envelopes)
        first = await gateway.process(records)
        again = await gateway.process(records[2:])

    [sent], [resent] = report_shares(first), report_shares(again)
    assert (resent.envelope.id, resent.envelope.recipient) == (sent.envelope.id, REFUGE), "the same report"
    assert orjson.loads(resent.plaintext) == orjson.loads(sent.plaintext), "the same document, byte for byte"
    assert orjson.loads(sent.plaintext)["disclosures"] == 1
    audited = [o for o in again if isinstance(o, Outgoing) and o.topic == settings.topics.audit]
    assert sorted(orjson.loads(o.value)["event_type"] for o in audited) == sorted(
        [EventType.SUBJECT_REPORT_REQUESTED.value, EventType.SUBJECT_REPORT_ISSUED.value]
    ), "its records published again, not recorded anew"


def report_shares(outgoing: list[Outgoing | Share]) -> list[Share]:
    return [o for o in outgoing if isinstance(o, Share) and o.envelope.type is EventType.SUBJECT_REPORT_ISSUED]
