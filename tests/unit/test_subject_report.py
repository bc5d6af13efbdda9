"""The person's disclosure report: read from audit records, held back while a hold runs, and rendered for the
person in French, Dutch or German, as HTML and as a PDF whose text says who received what, when, on which
legal basis, and how to object."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pypdf import PdfReader

from maillage.core.i18n import LANGUAGES, catalog
from maillage.domain.events import HoldReason
from maillage.domain.subject_report import Hold, active_holds, hold_refusal, holds_person, report_lines
from maillage.gateway.rendering import Agency, ReportRequest, render

pytestmark = pytest.mark.unit

REFUGE, CPAS, POLICE = "refuge-liege", "cpas-seraing", "zp-meuse"
AGENCIES = {
    REFUGE: Agency("Refuge Rosa — Liège", "victim_support"),
    CPAS: Agency("CPAS de Seraing (démo)", "social"),
    POLICE: Agency("Zone de police Meuse-Ourthe", "police"),
}
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def record(**fields: Any) -> dict[str, Any]:
    """An audit record as the gateway stores it: metadata only."""
    return {
        "event_id": "0190-0001",
        "event_type": "maillage.referral.created.v1",
        "source": REFUGE,
        "recipient": CPAS,
        "sector": "social",
        "subject_ref": "s-" + "a" * 32,
        "subject_role": "victim",
        "legal_basis": "consent",
        "outcome": "filtered",
        "delivered": ["identity", "contact"],
        "removed": {"health": "ceiling"},
        "recorded_at": "2026-11-03T09:30:00+00:00",
        **fields,
    }


RECORDS = [
    record(),
    record(outcome="denied", recipient="programme-auteurs", sector="perpetrator_support", delivered=[]),
    record(
        event_type="maillage.alert.raised.v1",
        recipient=POLICE,
        sector="police",
        legal_basis="danger",
        outcome="delivered",
        delivered=["identity", "location", "risk"],
        recorded_at="2026-11-10T21:05:00+00:00",
    ),
]

# In each language: the recipients' names, the kinds of information and legal bases in its words, and how
# to object (to the agency, and to the Data Protection Authority under its name in that language).
EXPECTED = {
    "fr": {
        "lines": ["Qui a reçu des informations vous concernant", "Orientation : Identité, Coordonnées"],
        "pdf": [
            "CPAS de Seraing (démo)",
            "Zone de police Meuse-Ourthe",
            "Identité",
            "Coordonnées",
            "Lieu de vie",
            "Évaluation du danger",
            "Votre consentement",
            "Danger grave et imminent",
            "458bis",
            "vous opposer",
            "Autorité de protection des données",
            "contact@apd-gba.be",
        ],
    },
    "nl": {
        "lines": ["Wie informatie over u heeft ontvangen", "Doorverwijzing: Identiteit, Contactgegevens"],
        "pdf": [
            "CPAS de Seraing (démo)",
            "Zone de police Meuse-Ourthe",
            "Identiteit",
            "Contactgegevens",
            "Verblijfplaats",
            "Inschatting van het gevaar",
            "Uw toestemming",
            "Ernstig en dreigend gevaar",
            "bezwaar",
            "Gegevensbeschermingsautoriteit",
            "Drukpersstraat 35",
        ],
    },
    "de": {
        "lines": ["Wer Informationen über Sie erhalten hat", "Weitervermittlung: Identität, Kontaktdaten"],
        "pdf": [
            "CPAS de Seraing (démo)",
            "Zone de police Meuse-Ourthe",
            "Identität",
            "Kontaktdaten",
            "Aufenthaltsort",
            "Gefährdungseinschätzung",
            "Ihre Einwilligung",
            "Ernste und unmittelbare Gefahr",
            "widersprechen",
            "Datenschutzbehörde",
            "Beschwerde",
        ],
    },
}


def pdf_text(pdf: bytes) -> str:
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    return " ".join(text.split())  # table cells wrap: words are compared, not line breaks


def drawn_up(language: str, records: list[dict[str, Any]] = RECORDS) -> tuple[str, bytes]:
    request = ReportRequest(language=language, request_id="r-42", agency=AGENCIES[REFUGE], drawn_up_at=NOW)
    return render(request, report_lines(records), agencies=AGENCIES)


@pytest.mark.parametrize("language", ["fr", "nl", "de"])
def test_the_report_tells_the_person_who_received_what_on_which_basis_in_their_language(language: str) -> None:
    html, pdf = drawn_up(language)
    expected = EXPECTED[language]
    assert f'<html lang="{language}">' in html
    for line in expected["lines"]:
        assert line in html
    assert html.count("<tr>") == 1 + 2, "a header and the two disclosures: the denial disclosed nothing"
    text = pdf_text(pdf)
    for words in [*expected["lines"], *expected["pdf"]]:
        assert words in text, f"{words!r} not in the {language} PDF"
    assert "programme-auteurs" not in text and "Programme Auteurs" not in text
    assert "Refuge Rosa" in text, "where the person objects first: the agency that gave them the report"


def test_the_document_is_the_same_for_the_same_lines() -> None:
    """A request read again after a crash is drawn up again: the person gets the same document."""
    assert drawn_up("fr") == drawn_up("fr")


def test_every_value_in_the_html_is_escaped() -> None:
    agencies = {**AGENCIES, CPAS: Agency('<script>alert("x")</script> & co', "social")}
    request = ReportRequest(language="fr", request_id="r-1", agency=AGENCIES[REFUGE], drawn_up_at=NOW)
    html, pdf = render(request, report_lines(RECORDS), agencies=agencies)
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp; co" in html
    assert '<script>alert("x")</script> & co' in pdf_text(pdf)


def test_a_person_nobody_received_anything_about_is_told_so() -> None:
    html, pdf = drawn_up("nl", records=[])
    assert "<table>" not in html
    assert "Geen enkele organisatie van het netwerk heeft informatie over u ontvangen." in pdf_text(pdf)


def test_a_legal_obligation_names_its_reference() -> None:
    obliged = record(legal_basis="legal_obligation", legal_reference="Code pénal art. 458", outcome="delivered")
    html, _ = drawn_up("fr", records=[obliged])
    assert "Obligation légale (référence : Code pénal art. 458)" in html


def test_only_an_agency_that_sent_or_received_something_holds_the_person() -> None:
    assert holds_person(RECORDS, agency_id=REFUGE)
    assert holds_person(RECORDS, agency_id=POLICE)
    assert not holds_person(RECORDS, agency_id="programme-auteurs"), "denied: it never learnt of the person"
    assert not holds_person(RECORDS, agency_id="sos-enfants")


def test_a_hold_is_limited_in_time() -> None:
    assert hold_refusal(placed_at=NOW, until=NOW + timedelta(days=180)) is None
    assert hold_refusal(placed_at=NOW, until=NOW + timedelta(days=181)) == "a hold lasts at most 180 days"
    assert hold_refusal(placed_at=NOW, until=NOW) == "a hold must end after it is placed"


def test_the_hold_ending_last_decides_until_when_the_report_is_held() -> None:
    holds = [
        Hold("h1", POLICE, NOW + timedelta(days=30), HoldReason.JUDICIAL_INVESTIGATION),
        Hold("h2", CPAS, NOW - timedelta(days=1), HoldReason.RISK_OF_RETALIATION),
        Hold("h3", REFUGE, NOW + timedelta(days=90), HoldReason.ONGOING_SAFETY_PLANNING),
    ]
    assert [h.hold_id for h in active_holds(holds, at=NOW)] == ["h3", "h1"]
    assert active_holds(holds, at=NOW + timedelta(days=90)) == []


def test_lines_recorded_after_a_time_are_left_out() -> None:
    assert len(report_lines(RECORDS, until="2026-11-05T00:00:00+00:00")) == 1
    assert [line.recipient for line in report_lines(RECORDS)] == [CPAS, POLICE]


def test_every_report_message_exists_in_every_language() -> None:
    keys = {language: set(catalog(language, "report")) for language in LANGUAGES}
    assert keys["en"], "the English catalog of the report"
    for language in LANGUAGES:
        assert keys[language] == keys["en"], f"{language}: {sorted(keys[language] ^ keys['en'])}"
