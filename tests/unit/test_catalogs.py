"""Words for people, in their language: every message in French, Dutch, German and English, chosen by the
caller's Accept-Language (or the terminal's locale), and the problem bodies and pages built from them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field
from typer.testing import CliRunner

import maillage
from maillage.cli.main import app as cli
from maillage.cli.words import phrase
from maillage.core.i18n import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    LOCALE_DIR,
    catalog,
    describe,
    domains,
    environment_language,
    message_fields,
    negotiate,
    translate,
)
from maillage.core.i18n import pages as page_messages
from maillage.core.web.problems import install_problem_handlers, validation_message
from maillage.domain.errors import MaillageError, NotAnonymous, NotFound, PoleRequired, UnknownRecipient

pytestmark = pytest.mark.unit

SERVICES = Path(maillage.__file__).parent


def test_every_language_ships_the_same_catalog_files() -> None:
    shipped = {lang: sorted(p.name for p in (LOCALE_DIR / lang / "LC_MESSAGES").glob("*.po")) for lang in LANGUAGES}

    assert "maillage" in domains()
    assert shipped == dict.fromkeys(LANGUAGES, shipped[DEFAULT_LANGUAGE])


def gaps(tables: dict[str, dict[str, str]]) -> tuple[list[str], list[str]]:
    """The keys some language lacks (or leaves empty), and the keys whose languages fill in different fields."""
    keys = set().union(*tables.values())
    missing = sorted(f"{lang}: {key}" for key in keys for lang in tables if not tables[lang].get(key, "").strip())
    fields = {key: {message_fields(tables[lang].get(key, "")) for lang in tables} for key in keys}
    return missing, sorted(key for key, found in fields.items() if len(found) > 1)


@pytest.mark.parametrize("domain", domains())
def test_every_key_is_translated_in_every_language_with_the_same_fields(domain: str) -> None:
    assert gaps({lang: dict(catalog(lang, domain)) for lang in LANGUAGES}) == ([], [])


def test_a_key_missing_from_one_catalog_or_filling_other_fields_is_caught() -> None:
    tables = {"en": {"a": "A", "b": "B {n}"}, "fr": {"a": "A"}, "nl": {"a": "A", "b": "B"}, "de": {"a": "", "b": "{n}"}}

    assert gaps(tables) == (["de: a", "fr: b"], ["b"])


KEY_IN_CODE = re.compile(r"""["']((?:problem|validation|cli)\.[a-z0-9_-]+(?:\.[a-z0-9_-]+)+)["']""")


def test_every_message_key_the_code_names_is_in_the_catalog() -> None:
    named = {
        (path.relative_to(SERVICES).as_posix(), key)
        for path in SERVICES.rglob("*.py")
        for key in KEY_IN_CODE.findall(path.read_text(encoding="utf-8"))
    }
    english = catalog(DEFAULT_LANGUAGE)

    assert len(named) > 80
    assert sorted(f"{where}: {key}" for where, key in named if key not in english) == []


def _error_types() -> set[str]:
    found: set[str] = set()
    todo: list[type[MaillageError]] = [MaillageError]
    while todo:
        kind = todo.pop()
        found.add(kind.__name__)
        todo.extend(kind.__subclasses__())
    return found


def _calls_with_a_key(tree: ast.AST, callees: set[str]) -> list[tuple[int, str, set[str]]]:
    """(line, key, keyword names) of each call of `callees` whose first argument is a literal key."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args or any(k.arg is None for k in node.keywords):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        first = node.args[0]
        if name in callees and isinstance(first, ast.Constant) and isinstance(first.value, str):
            found.append((node.lineno, first.value, {str(k.arg) for k in node.keywords} - {"extensions"}))
    return found


def test_every_error_raised_and_line_printed_gives_the_fields_its_message_fills_in() -> None:
    english = catalog(DEFAULT_LANGUAGE)
    callees = _error_types() | {"phrase"}
    calls = [
        (path.relative_to(SERVICES), line, key, given)
        for path in SERVICES.rglob("*.py")
        for line, key, given in _calls_with_a_key(ast.parse(path.read_text(encoding="utf-8")), callees)
    ]
    wrong = [
        f"{where}:{line}: {key} {sorted(given)} ≠ {sorted(message_fields(english[key]))}"
        for where, line, key, given in calls
        if key in english and given != message_fields(english[key])
    ]

    assert len(calls) > 80
    assert wrong == []


def test_the_pages_messages_files_are_generated_from_the_catalogs_and_current() -> None:
    assert page_messages.stale() == [], "run `maillage messages`"
    assert page_messages.page_messages("oncall")["nl"]["retry"] == catalog("nl")["page.oncall.retry"]
    assert page_messages.page_messages("dashboard")["de"]["types"]["alert.raised"]


# --- choosing the language ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "chosen"),
    [
        ("de;q=0.5, nl;q=0.9", "nl"),
        ("fr-BE", "fr"),
        ("fr-BE,fr;q=0.9,en;q=0.8", "fr"),
        ("nl-BE, fr;q=0.8", "nl"),
        ("es, de;q=0.1", "de"),
        ("en;q=0.2, de;q=0.2", "en"),  # a tie goes to the order the header lists them in
        ("nl;q=0, fr;q=0.1", "fr"),  # q=0 refuses
        ("*", "en"),
        ("nl;q=0, *;q=0.5", "en"),
        ("en;q=0, *;q=0.5", "fr"),
        ("de;q=0.3, *;q=0.5", "en"),
        ("nl;q=0", "en"),
        ("es, it", "en"),
        ("", "en"),
        (None, "en"),
        ("fr;q=nonsense, nl", "nl"),
    ],
)
def test_accept_language_is_negotiated_with_its_quality_weights(header: str | None, chosen: str) -> None:
    assert negotiate(header) == chosen


@pytest.mark.parametrize(
    ("environ", "chosen"),
    [
        ({"MAILLAGE_LANGUAGE": "de", "LANG": "fr_BE.UTF-8"}, "de"),
        ({"LANG": "fr_BE.UTF-8"}, "fr"),
        ({"LC_MESSAGES": "nl_BE.UTF-8", "LANG": "fr_BE.UTF-8"}, "nl"),
        ({"LC_ALL": "de_BE@euro", "LC_MESSAGES": "nl_BE", "LANG": "fr_BE"}, "de"),
        ({"LC_ALL": "C.UTF-8", "LANG": "fr_BE.UTF-8"}, "en"),
        ({"MAILLAGE_LANGUAGE": "es", "LANG": "nl_BE.UTF-8"}, "nl"),
        ({"LANG": "es_ES.UTF-8"}, "en"),
        ({}, "en"),
    ],
)
def test_the_terminal_language_comes_from_maillage_language_then_the_locale(
    environ: dict[str, str], chosen: str
) -> None:
    assert environment_language(environ) == chosen


# --- problem details and validation messages -------------------------------------------------------------


def test_a_message_is_filled_in_and_falls_back_to_english_then_to_its_key() -> None:
    assert translate("fr", "problem.forbidden.scope-missing", scope="audit:read") == (
        "Ce jeton n'a pas la portée audit:read."
    )
    assert translate("nl", "no.such.key") == "no.such.key"
    assert translate("de", "problem.too-large.limit") == "Die Grenze liegt bei {limit} Bytes."  # nothing to fill in
    assert translate("de", "problem.too-large.limit", other=1) == "Die Grenze liegt bei {limit} Bytes."


def test_an_error_reads_in_english_for_logs_and_in_any_language_asked() -> None:
    refused = PoleRequired.of(("liege",), asked="namur")

    assert str(refused) == "problem.pole-required.not-served"
    assert describe(refused) == "This agency does not serve the Pôle namur."
    assert describe(refused, "nl") == "Deze organisatie werkt niet voor de Pôle namur."


@pytest.mark.parametrize(
    ("language", "error_type", "ctx", "said"),
    [
        ("nl", "missing", None, "Dit veld is verplicht."),
        ("fr", "string_too_long", {"max_length": 64}, "Au plus 64 caractères."),
        ("de", "enum", {"expected": "'victim', 'perpetrator', 'child' or 'other'"}, "Erwartet wird einer"),
        ("nl", "uuid_parsing", {"error": "invalid character"}, "Geef een identificatiecode (UUID) op."),
        ("fr", "string_too_long", None, "Cette valeur n'est pas valide."),  # its context missing: the generic one
        ("de", "no_such_pydantic_type", {"x": 1}, "Dieser Wert ist ungültig."),
    ],
)
def test_validation_messages_come_from_the_catalog_by_error_type(
    language: str, error_type: str, ctx: dict[str, object] | None, said: str
) -> None:
    assert validation_message(language, error_type, ctx).startswith(said)


class Referral(BaseModel):
    recipient: str = Field(max_length=20)
    reason: str


def app() -> FastAPI:
    api = FastAPI()
    install_problem_handlers(api)

    @api.post("/v1/referrals")
    async def refer(body: Referral) -> None:
        raise UnknownRecipient(
            "problem.unknown-recipient.not-in-network", names=body.recipient, extensions={"unknown": [body.recipient]}
        )

    @api.get("/v1/referrals/{referral_id}")
    async def referral(referral_id: str) -> None:
        raise NotFound("problem.not-found.referral")

    @api.get("/v1/poles")
    async def poles() -> None:
        raise PoleRequired.of(("liege", "namur"), asked=None)

    @api.post("/v1/consultations")
    async def consult() -> None:
        raise NotAnonymous("problem.not-anonymous.remove", names="identity", extensions={"fields": ["identity"]})

    return api


def test_a_problem_is_titled_detailed_and_validated_in_the_callers_language() -> None:
    client = TestClient(app())
    dutch = {"Accept-Language": "de;q=0.5, nl;q=0.9"}

    unknown = client.post("/v1/referrals", json={"recipient": "astrology", "reason": "shelter"}, headers=dutch)
    invalid = client.post("/v1/referrals", json={"recipient": "Amina Testperson " * 3}, headers=dutch)
    missing = client.get("/v1/referrals/r-1", headers={"Accept-Language": "fr-BE"})
    several = client.get("/v1/poles", headers={"Accept-Language": "de"})
    named = client.post("/v1/consultations", headers={"Accept-Language": "nl"})

    assert unknown.status_code == 422 and unknown.headers["content-language"] == "nl"
    assert unknown.json()["title"] == "Onbekende ontvanger"
    assert unknown.json()["detail"] == "Geen sector of organisatie van dit netwerk: astrology."
    assert unknown.json()["unknown"] == ["astrology"]
    assert unknown.json()["type"] == "https://maillage.be/problems/unknown-recipient"
    body = invalid.json()
    assert (body["title"], body["detail"]) == ("Het verzoek is ongeldig", "Sommige velden ontbreken of zijn ongeldig.")
    assert {(e["loc"][-1], e["msg"]) for e in body["errors"]} == {
        ("recipient", "Hoogstens 20 tekens."),
        ("reason", "Dit veld is verplicht."),
    }
    assert "Amina" not in invalid.text
    assert missing.json()["detail"] == "Cette organisation n'a aucune orientation portant cet identifiant."
    assert missing.headers["content-language"] == "fr"
    assert several.json()["detail"] == (
        "Diese Einrichtung ist für 2 Pôles tätig: Geben Sie an, zu welchem das Ereignis gehört."
    )
    assert several.json()["poles"] == ["liege", "namur"]
    assert named.json()["fields"] == ["identity"], "an extension named like the detail's fields is kept"
    assert named.json()["detail"].startswith("Een consultatie is anoniem: verwijder identity.")


def test_an_unknown_route_says_so_in_the_callers_language() -> None:
    answer = TestClient(app()).get("/v1/nowhere", headers={"Accept-Language": "nl"})

    assert answer.status_code == 404
    assert (answer.json()["title"], answer.json()["detail"]) == ("Niet gevonden", "Er is niets op dit adres.")


# --- the command line -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "said"),
    [
        ({"LANG": "fr_BE.UTF-8"}, "Rien à rejouer."),
        ({"LANG": "nl_BE.UTF-8"}, "Niets om opnieuw te verwerken."),
        ({"MAILLAGE_LANGUAGE": "de", "LANG": "fr_BE.UTF-8"}, "Nichts erneut zu verarbeiten."),
        ({"LANG": "C.UTF-8"}, "Nothing to replay."),
    ],
)
def test_a_command_speaks_the_terminals_language(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], said: str
) -> None:
    for name in ("MAILLAGE_LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)

    assert phrase("cli.dlq.nothing") == said


def test_maillage_messages_checks_the_pages_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILLAGE_LANGUAGE", "nl")

    checked = CliRunner().invoke(cli, ["messages", "--check"])

    assert checked.exit_code == 0, checked.output
    assert "De berichtbestanden van de pagina's zijn actueel." in checked.output
