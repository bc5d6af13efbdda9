"""Errors rendered at the edge: RFC 9457 problem bodies with titles in English, French, Dutch and German."""

from __future__ import annotations

from typing import Any

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from maillage.domain.errors import MaillageError, Unauthorized

PROBLEM_TYPE_BASE = "https://maillage.be/problems/"
PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = 5

# Titles a partner system may show to a worker; the `type` URI is the stable contract.
TITLES: dict[str, dict[str, str]] = {
    "validation": {
        "en": "The request is not valid",
        "fr": "La requête n'est pas valide",
        "nl": "Het verzoek is ongeldig",
        "de": "Die Anfrage ist ungültig",
    },
    "malformed-json": {
        "en": "The body is not valid JSON",
        "fr": "Le corps n'est pas du JSON valide",
        "nl": "De inhoud is geen geldige JSON",
        "de": "Der Inhalt ist kein gültiges JSON",
    },
    "too-large": {
        "en": "The body is too large",
        "fr": "Le corps est trop volumineux",
        "nl": "De inhoud is te groot",
        "de": "Der Inhalt ist zu groß",
    },
    "acting-staff-required": {
        "en": "Say which professional acts",
        "fr": "Indiquez quel professionnel agit",
        "nl": "Geef aan welke professional handelt",
        "de": "Geben Sie an, welche Fachkraft handelt",
    },
    "invalid-client": {
        "en": "The client is not known, or its credentials are wrong",
        "fr": "Le client est inconnu, ou ses identifiants sont erronés",
        "nl": "De client is onbekend, of zijn gegevens kloppen niet",
        "de": "Der Client ist unbekannt, oder seine Zugangsdaten sind falsch",
    },
    "oauth": {
        "en": "The token request cannot be granted",
        "fr": "La demande de jeton ne peut être accordée",
        "nl": "Het tokenverzoek kan niet worden ingewilligd",
        "de": "Die Token-Anfrage kann nicht gewährt werden",
    },
    "not-found": {"en": "Not found", "fr": "Introuvable", "nl": "Niet gevonden", "de": "Nicht gefunden"},
    "conflict": {
        "en": "Conflict with the current state",
        "fr": "Conflit avec l'état actuel",
        "nl": "Conflict met de huidige toestand",
        "de": "Konflikt mit dem aktuellen Zustand",
    },
    "unknown-recipient": {
        "en": "Unknown recipient",
        "fr": "Destinataire inconnu",
        "nl": "Onbekende ontvanger",
        "de": "Unbekannter Empfänger",
    },
    "pole-required": {
        "en": "Say which of your Pôles the event belongs to",
        "fr": "Précisez à quel Pôle, parmi les vôtres, l'événement appartient",
        "nl": "Geef aan tot welke van uw Pôles de gebeurtenis behoort",
        "de": "Geben Sie an, zu welchem Ihrer Pôles das Ereignis gehört",
    },
    "grounds-required": {
        "en": "This legal basis needs its grounds",
        "fr": "Cette base légale doit être justifiée par ses fondements",
        "nl": "Deze rechtsgrond vereist zijn grondslag",
        "de": "Diese Rechtsgrundlage braucht ihre Begründung",
    },
    "not-a-convener": {
        "en": "This agency may not convene case conferences",
        "fr": "Cette organisation ne peut pas convoquer de concertation de cas",
        "nl": "Deze organisatie mag geen casusoverleg bijeenroepen",
        "de": "Diese Einrichtung darf keine Fallkonferenz einberufen",
    },
    "unknown-discloser": {
        "en": "Unknown disclosing agency",
        "fr": "Organisme communicant inconnu",
        "nl": "Onbekende verstrekkende instantie",
        "de": "Unbekannte übermittelnde Stelle",
    },
    "idempotency-key-reused": {
        "en": "This Idempotency-Key was used for another request",
        "fr": "Cette clé d'idempotence a servi pour une autre requête",
        "nl": "Deze idempotentiesleutel werd voor een ander verzoek gebruikt",
        "de": "Dieser Idempotenzschlüssel wurde für eine andere Anfrage verwendet",
    },
    "unsupported-media-type": {
        "en": "Send application/json",
        "fr": "Envoyez du application/json",
        "nl": "Stuur application/json",
        "de": "Senden Sie application/json",
    },
    "webhook-destination": {
        "en": "This webhook destination is not accepted",
        "fr": "Cette destination de webhook n'est pas acceptée",
        "nl": "Deze webhookbestemming wordt niet aanvaard",
        "de": "Dieses Webhook-Ziel wird nicht akzeptiert",
    },
    "http": {"en": "Request refused", "fr": "Requête refusée", "nl": "Verzoek geweigerd", "de": "Anfrage abgelehnt"},
    "unauthorized": {
        "en": "Authentication required",
        "fr": "Authentification requise",
        "nl": "Authenticatie vereist",
        "de": "Authentifizierung erforderlich",
    },
    "forbidden": {"en": "Not allowed", "fr": "Non autorisé", "nl": "Niet toegestaan", "de": "Nicht erlaubt"},
    "not-ready": {"en": "Not ready yet", "fr": "Pas encore prêt", "nl": "Nog niet klaar", "de": "Noch nicht bereit"},
    "request-timeout": {
        "en": "The request took too long to arrive",
        "fr": "La requête a mis trop de temps à arriver",
        "nl": "Het verzoek deed er te lang over om aan te komen",
        "de": "Die Anfrage brauchte zu lange, um anzukommen",
    },
    "too-many-streams": {
        "en": "Too many open connections",
        "fr": "Trop de connexions ouvertes",
        "nl": "Te veel open verbindingen",
        "de": "Zu viele offene Verbindungen",
    },
    "not-anonymous": {
        "en": "A consultation is anonymous: remove what tells who it is about",
        "fr": "Une consultation est anonyme : retirez ce qui permet d'identifier la personne",
        "nl": "Een consultatie is anoniem: verwijder wat de persoon identificeert",
        "de": "Eine Konsultation ist anonym: Entfernen Sie, was die Person erkennen lässt",
    },
    "no-consultation-desk": {
        "en": "This Pôle has no consultation desk",
        "fr": "Ce Pôle n'a pas de service de consultation",
        "nl": "Deze Pôle heeft geen consultatiedienst",
        "de": "Dieser Pôle hat keine Konsultationsstelle",
    },
    "self-review": {
        "en": "The one who raised the alert cannot review it",
        "fr": "La personne qui a donné l'alerte ne peut pas la revoir",
        "nl": "Wie de melding deed, kan ze niet beoordelen",
        "de": "Wer den Alarm ausgelöst hat, kann ihn nicht prüfen",
    },
    "already-reviewed": {
        "en": "This alert was already reviewed",
        "fr": "Cette alerte a déjà été revue",
        "nl": "Deze melding werd al beoordeeld",
        "de": "Dieser Alarm wurde bereits geprüft",
    },
    "internal": {
        "en": "The service could not complete the request",
        "fr": "Le service n'a pas pu traiter la requête",
        "nl": "De dienst kon het verzoek niet afhandelen",
        "de": "Der Dienst konnte die Anfrage nicht bearbeiten",
    },
}
LANGUAGES = ("en", "fr", "nl", "de")


def preferred_language(accept_language: str | None) -> str:
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return "en"


def problem(request: Request, *, status: int, code: str, detail: str, **extensions: Any) -> JSONResponse:
    language = preferred_language(request.headers.get("accept-language"))
    body = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": TITLES.get(code, TITLES["http"])[language],
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extensions,
    }
    headers = {"Content-Language": language}
    if status == 503:
        # A 503 is temporary by definition: say when to come back, so that a partner's system retries
        # (with the same Idempotency-Key) instead of giving up or hammering.
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def temporarily_unavailable(request: Request) -> JSONResponse:
    """The answer to a failure the partner cannot fix (a database away, a bug): a 503 that says when to retry."""
    return problem(
        request, status=503, code="internal", detail="Temporarily unavailable; retry with the same Idempotency-Key."
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Never echo the submitted values back: they may be personal data.
    return [
        {"loc": [str(p) for p in err.get("loc", ())], "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]


def install_problem_handlers(app: FastAPI) -> None:
    async def on_maillage_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, MaillageError)
        response = problem(request, status=exc.status, code=exc.code, detail=exc.detail, **exc.extensions)
        if isinstance(exc, Unauthorized):
            response.headers["WWW-Authenticate"] = 'Bearer realm="maillage"'
        return response

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = _validation_errors(exc)
        if any(e["type"] == "json_invalid" for e in errors):
            return problem(request, status=400, code="malformed-json", detail="The body could not be parsed.")
        return problem(
            request, status=422, code="validation", detail="Some fields are missing or invalid.", errors=errors
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = "not-found" if exc.status_code == 404 else "http"
        return problem(request, status=exc.status_code, code=code, detail=str(exc.detail))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        return temporarily_unavailable(request)

    async def on_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # The database, Kafka or another server gone mid-request — a PostgreSQL restart: the same 503, answered
        # here rather than by Starlette's last-resort handler, which re-raises after answering, so the server
        # dropped the connection and partners saw no answer at all.
        return await on_unexpected(request, exc)

    app.add_exception_handler(MaillageError, on_maillage_error)
    app.add_exception_handler(DBAPIError, on_unavailable)
    app.add_exception_handler(OSError, on_unavailable)
    app.add_exception_handler(KafkaError, on_unavailable)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
