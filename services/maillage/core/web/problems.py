"""Errors rendered at the edge: RFC 9457 problem bodies whose title, detail and validation messages come from the
message catalogs (maillage.core.i18n), in the language the request's Accept-Language prefers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from maillage.core.i18n import DEFAULT_LANGUAGE, catalog, message_fields, negotiate, translate
from maillage.domain.errors import MaillageError, Unauthorized

PROBLEM_TYPE_BASE = "https://maillage.be/problems/"
PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = 5
HTTP_DETAILS = {404: "problem.not-found.route", 405: "problem.http.method-not-allowed"}


def title(code: str, language: str) -> str:
    """The problem type's title a partner system may show to a worker; the `type` URI is the stable contract."""
    key = f"problem.{code}.title"
    return translate(language, key) if key in catalog(DEFAULT_LANGUAGE) else translate(language, "problem.http.title")


def language_of(request: Request) -> str:
    return negotiate(request.headers.get("accept-language"))


def problem(
    request: Request,
    *,
    status: int,
    code: str,
    detail: str,
    detail_fields: Mapping[str, Any] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """The problem body for `code`, its title and its `detail` (a message key, filled in with `detail_fields`) in
    the language the request prefers; `extensions` are further members, as they are (`fields`, `unknown`…)."""
    language = language_of(request)
    body = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title(code, language),
        "status": status,
        "detail": translate(language, detail, **(detail_fields or {})),
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
    return problem(request, status=503, code="internal", detail="problem.internal.retry")


def _validation_errors(exc: RequestValidationError, language: str) -> list[dict[str, Any]]:
    # Never echo the submitted values back: they may be personal data.
    return [
        {
            "loc": [str(p) for p in err.get("loc", ())],
            "msg": validation_message(language, err.get("type", ""), err.get("ctx")),
            "type": err.get("type", ""),
        }
        for err in exc.errors()
    ]


def validation_message(language: str, error_type: str, ctx: Mapping[str, Any] | None) -> str:
    """Pydantic's message for an error `type`, from the catalog: filled in with the constraint's own context
    (a maximum length, the values expected), never the value submitted; a generic one for a type not known."""
    key = f"validation.{error_type}"
    template = catalog(DEFAULT_LANGUAGE).get(key)
    needed = message_fields(template) if template else None
    if needed is None or not needed <= set(ctx or {}):
        return translate(language, "validation.invalid")
    return translate(language, key, **{name: _shown(ctx[name]) for name in needed} if ctx else {})


def _shown(value: Any) -> str:
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(str(v) for v in value)
    return str(value)


def install_problem_handlers(app: FastAPI) -> None:
    async def on_maillage_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, MaillageError)
        response = problem(
            request, status=exc.status, code=exc.code, detail=exc.key, detail_fields=exc.fields, **exc.extensions
        )
        if isinstance(exc, Unauthorized):
            response.headers["WWW-Authenticate"] = 'Bearer realm="maillage"'
        return response

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = _validation_errors(exc, language_of(request))
        if any(e["type"] == "json_invalid" for e in errors):
            return problem(request, status=400, code="malformed-json", detail="problem.malformed-json.unparsable")
        return problem(request, status=422, code="validation", detail="problem.validation.fields", errors=errors)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        # Starlette's own refusals (no such route, a method not allowed): their English detail replaced by ours.
        code = "not-found" if exc.status_code == 404 else "http"
        detail = HTTP_DETAILS.get(exc.status_code, "problem.http.refused")
        return problem(request, status=exc.status_code, code=code, detail=detail)

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
