"""REST routes of the agency service: parse, call one use case, return its result."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request, Response, status

from maillage.agency import conferences, consultations, reports, reviews, services, subjects
from maillage.agency import contracts as c
from maillage.agency.deps import Allowed, Context, IdempotencyKey
from maillage.core.crypto.tokens import Principal, Scope, staff_ref
from maillage.core.messaging.envelope import SUBJECT_REF
from maillage.core.web.auth import person_ref
from maillage.core.web.oauth import FORM, TOKEN_PATH, TokenAnswer, TokenEndpoint
from maillage.core.web.paging import Cursor, Limit
from maillage.core.web.problems import PROBLEM_JSON

PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "RFC 9457 problem"}
ERRORS = {400: PROBLEM, 401: PROBLEM, 403: PROBLEM, 404: PROBLEM, 409: PROBLEM, 413: PROBLEM, 422: PROBLEM}

CONSENT_WRITE = [Allowed(Scope.CONSENT_WRITE)]
EVENTS_WRITE = [Allowed(Scope.EVENTS_WRITE)]
INBOX_READ = [Allowed(Scope.INBOX_READ)]
WEBHOOKS_MANAGE = [Allowed(Scope.WEBHOOKS_MANAGE)]
DISCLOSURE_REVIEW = [Allowed(Scope.DISCLOSURE_REVIEW)]
SUBJECT_ERASE = [Allowed(Scope.SUBJECT_ERASE)]
SUBJECT_REPORT = [Allowed(Scope.SUBJECT_REPORT)]
SubjectRefPath = Annotated[str, Path(pattern=SUBJECT_REF.pattern)]
# The document is the person's: shown as it is, with nothing the page could load or run.
DOCUMENT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter(prefix="/v1", responses=ERRORS)  # type: ignore[arg-type]
oauth = APIRouter(tags=["oauth"])

_TOKEN_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            FORM: {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["client_credentials"]},
                        "scope": {"type": "string", "description": "Space-separated; all the client's if absent."},
                        "client_id": {"type": "string", "description": "With client_secret_post only."},
                        "client_secret": {"type": "string", "description": "With client_secret_post only."},
                    },
                }
            }
        },
    }
}


@oauth.post(
    TOKEN_PATH,
    summary="A token for a registered partner system (OAuth 2.0 client credentials, RFC 6749 §4.4)",
    openapi_extra=_TOKEN_FORM,
    response_model=TokenAnswer,
    responses={400: PROBLEM, 401: PROBLEM, 413: PROBLEM, 415: PROBLEM},
)
async def token(request: Request) -> Response:
    endpoint: TokenEndpoint = request.app.state.tokens
    return await endpoint.respond(request)


@router.post("/consents", status_code=status.HTTP_201_CREATED, tags=["consents"])
async def register_consent(
    body: c.ConsentIn,
    ctx: Context,
    caller: Annotated[Principal, Allowed(Scope.CONSENT_WRITE)],
    key: IdempotencyKey = None,
) -> c.ConsentOut:
    return await services.register_consent(ctx, body, idempotency_key=key, obtained_by=person_ref(caller))


@router.post("/consents/{consent_id}/withdraw", tags=["consents"], dependencies=CONSENT_WRITE)
async def withdraw_consent(consent_id: UUID, ctx: Context) -> c.ConsentOut:
    return await services.withdraw_consent(ctx, consent_id)


@router.get("/consents", tags=["consents"], dependencies=CONSENT_WRITE)
async def list_consents(
    ctx: Context, subject_ref: Annotated[str, Query(pattern=SUBJECT_REF.pattern)]
) -> list[c.ConsentOut]:
    return await services.list_consents(ctx, subject_ref)


@router.post("/referrals", status_code=status.HTTP_202_ACCEPTED, tags=["referrals"], dependencies=EVENTS_WRITE)
async def send_referral(body: c.ReferralIn, ctx: Context, key: IdempotencyKey = None) -> c.ReferralAccepted:
    return await services.send_referral(ctx, body, idempotency_key=key)


@router.get("/referrals/{referral_id}", tags=["referrals"], dependencies=INBOX_READ)
async def get_referral(referral_id: str, ctx: Context) -> c.ReferralOut:
    return await services.get_referral(ctx, referral_id)


@router.post("/referrals/{referral_id}/response", tags=["referrals"], dependencies=EVENTS_WRITE)
async def respond_to_referral(referral_id: str, body: c.ReferralResponseIn, ctx: Context) -> c.ReferralOut:
    return await services.respond_to_referral(ctx, referral_id, body)


@router.post("/alerts", status_code=status.HTTP_202_ACCEPTED, tags=["alerts"])
async def raise_alert(
    body: c.AlertIn, ctx: Context, caller: Annotated[Principal, Allowed(Scope.EVENTS_WRITE)], key: IdempotencyKey = None
) -> c.AcceptedEvent:
    return await services.raise_alert(ctx, body, idempotency_key=key, raised_by=person_ref(caller))


@router.post("/consultations", status_code=status.HTTP_202_ACCEPTED, tags=["consultations"], dependencies=EVENTS_WRITE)
async def ask_consultation(body: c.ConsultationIn, ctx: Context, key: IdempotencyKey = None) -> c.ConsultationAccepted:
    return await consultations.ask(ctx, body, idempotency_key=key)


@router.get("/consultations/{consultation_id}", tags=["consultations"], dependencies=INBOX_READ)
async def get_consultation(consultation_id: str, ctx: Context) -> c.ConsultationOut:
    return await consultations.get(ctx, consultation_id)


@router.post("/consultations/{consultation_id}/answer", tags=["consultations"], dependencies=EVENTS_WRITE)
async def answer_consultation(consultation_id: UUID, body: c.ConsultationAnswerIn, ctx: Context) -> c.ConsultationOut:
    return await consultations.answer(ctx, str(consultation_id), body)


@router.get("/reviews", tags=["reviews"], dependencies=DISCLOSURE_REVIEW, summary="Danger alerts to review")
async def list_reviews(ctx: Context, pending: bool = False, cursor: Cursor = None, limit: Limit = 50) -> c.ReviewPage:
    return await reviews.reviews(ctx, pending=pending, cursor=cursor, limit=limit)


@router.get("/reviews/{alert_id}", tags=["reviews"], dependencies=DISCLOSURE_REVIEW)
async def get_review(alert_id: str, ctx: Context) -> c.ReviewOut:
    return await reviews.review(ctx, alert_id)


@router.post("/reviews/{alert_id}", tags=["reviews"], summary="Approve or reject: a second person")
async def review_alert(
    alert_id: str, body: c.ReviewIn, ctx: Context, caller: Annotated[Principal, Allowed(Scope.DISCLOSURE_REVIEW)]
) -> c.ReviewOut:
    return await reviews.decide(ctx, alert_id, body, reviewer=person_ref(caller))


@router.post(
    "/case-conferences", status_code=status.HTTP_201_CREATED, tags=["case conferences"], dependencies=EVENTS_WRITE
)
async def convene_case_conference(
    body: c.CaseConferenceIn, ctx: Context, key: IdempotencyKey = None
) -> c.CaseConferenceOut:
    return await conferences.convene(ctx, body, idempotency_key=key)


@router.post("/case-conferences/{conference_id}/close", tags=["case conferences"], dependencies=EVENTS_WRITE)
async def close_case_conference(conference_id: UUID, ctx: Context) -> c.CaseConferenceOut:
    return await conferences.close(ctx, conference_id)


@router.get("/case-conferences/{conference_id}", tags=["case conferences"], dependencies=INBOX_READ)
async def get_case_conference(conference_id: UUID, ctx: Context) -> c.CaseConferenceOut:
    return await conferences.get(ctx, conference_id)


@router.get("/inbox", tags=["inbox"], dependencies=INBOX_READ)
async def inbox(ctx: Context, cursor: Cursor = None, limit: Limit = 50) -> c.InboxPage:
    return await services.inbox(ctx, cursor=cursor, limit=limit)


@router.get("/events", tags=["events"], dependencies=EVENTS_WRITE)
async def sent_events(
    ctx: Context,
    pending: Annotated[bool, Query(description="Only the events the gateway has not decided yet.")] = False,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> c.EventFatePage:
    """What became of the events this agency sent, oldest first: each one as `GET /v1/events/{event_id}` shows it."""
    return await services.sent_events(ctx, pending=pending, cursor=cursor, limit=limit)


@router.get("/events/{event_id}", tags=["events"], dependencies=EVENTS_WRITE)
async def event_fate(event_id: str, ctx: Context) -> c.EventFate:
    return await services.event_fate(ctx, event_id)


@router.post("/webhooks", status_code=status.HTTP_201_CREATED, tags=["webhooks"])
async def register_webhook(
    body: c.WebhookIn, ctx: Context, caller: Annotated[Principal, Allowed(Scope.WEBHOOKS_MANAGE)]
) -> c.WebhookCreated:
    return await services.register_webhook(ctx, body, registered_by=staff_ref(caller))


@router.get("/webhooks", tags=["webhooks"], dependencies=WEBHOOKS_MANAGE)
async def list_webhooks(ctx: Context) -> list[c.WebhookOut]:
    return await services.list_webhooks(ctx)


@router.delete(
    "/webhooks/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["webhooks"], dependencies=WEBHOOKS_MANAGE
)
async def delete_webhook(webhook_id: str, ctx: Context) -> None:
    await services.delete_webhook(ctx, webhook_id)


@router.post("/webhooks/{webhook_id}/secret", tags=["webhooks"], dependencies=WEBHOOKS_MANAGE)
async def rotate_webhook_secret(webhook_id: str, ctx: Context) -> c.WebhookSecret:
    return await services.rotate_webhook_secret(ctx, webhook_id)


@router.post("/webhooks/{webhook_id}/renew", tags=["webhooks"], dependencies=WEBHOOKS_MANAGE)
async def renew_webhook(webhook_id: str, body: c.WebhookRenewal, ctx: Context) -> c.WebhookOut:
    return await services.renew_webhook(ctx, webhook_id, body)


@router.get("/webhooks/{webhook_id}/deliveries", tags=["webhooks"], dependencies=WEBHOOKS_MANAGE)
async def webhook_deliveries(
    webhook_id: str, ctx: Context, cursor: Cursor = None, limit: Limit = 50
) -> c.WebhookDeliveryPage:
    return await services.webhook_deliveries(ctx, webhook_id, cursor=cursor, limit=limit)


@router.post(
    "/subjects/{subject_ref}/erasure",
    status_code=status.HTTP_202_ACCEPTED,
    tags=["subjects"],
    dependencies=SUBJECT_ERASE,
    summary="Erase a person here and at every agency that holds them",
)
async def request_erasure(subject_ref: SubjectRefPath, body: c.ErasureIn, ctx: Context) -> c.AcceptedEvent:
    return await subjects.request_erasure(ctx, subject_ref, body)


@router.get("/erasures/{erasure_id}", tags=["subjects"], dependencies=SUBJECT_ERASE, summary="Who confirmed")
async def erasure(erasure_id: str, ctx: Context) -> c.ErasureOut:
    return await subjects.erasure(ctx, erasure_id)


@router.post(
    "/subjects/{subject_ref}/role-corrections",
    status_code=status.HTTP_202_ACCEPTED,
    tags=["subjects"],
    dependencies=EVENTS_WRITE,
    summary="Correct the role recorded for a person, at every agency that received it",
)
async def correct_role(subject_ref: SubjectRefPath, body: c.RoleCorrectionIn, ctx: Context) -> c.AcceptedEvent:
    return await subjects.correct_role(ctx, subject_ref, body)


@router.post(
    "/subjects/{subject_ref}/role-corrections/{correction_id}/erasure",
    status_code=status.HTTP_202_ACCEPTED,
    tags=["subjects"],
    dependencies=SUBJECT_ERASE,
    summary="Ask exactly the recipients a correction flagged to erase exactly the events flagged",
)
async def erase_misrouted(subject_ref: SubjectRefPath, correction_id: str, ctx: Context) -> c.AcceptedEvent:
    return await subjects.erase_misrouted(ctx, subject_ref, correction_id)


@router.post(
    "/subjects/{subject_ref}/report-requests",
    status_code=status.HTTP_202_ACCEPTED,
    tags=["disclosure reports"],
    summary="Register the person's request for their report: who received what about them, across the network",
)
async def request_report(
    subject_ref: SubjectRefPath,
    body: c.ReportRequestIn,
    ctx: Context,
    caller: Annotated[Principal, Allowed(Scope.SUBJECT_REPORT)],
    key: IdempotencyKey = None,
) -> c.ReportRequestOut:
    return await reports.request(ctx, subject_ref, body, requested_by=person_ref(caller), idempotency_key=key)


@router.get(
    "/subjects/{subject_ref}/report-requests/{request_id}", tags=["disclosure reports"], dependencies=SUBJECT_REPORT
)
async def get_report_request(subject_ref: SubjectRefPath, request_id: UUID, ctx: Context) -> c.ReportRequestOut:
    return await reports.get(ctx, subject_ref, request_id)


@router.get(
    "/subjects/{subject_ref}/report-requests/{request_id}/document.pdf",
    tags=["disclosure reports"],
    dependencies=SUBJECT_REPORT,
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "The report, for the person"}},
)
async def report_pdf(subject_ref: SubjectRefPath, request_id: UUID, ctx: Context) -> Response:
    content = await reports.document(ctx, subject_ref, request_id, kind="pdf")
    return Response(content, media_type="application/pdf", headers=DOCUMENT_HEADERS)


@router.get(
    "/subjects/{subject_ref}/report-requests/{request_id}/document.html",
    tags=["disclosure reports"],
    dependencies=SUBJECT_REPORT,
    response_class=Response,
    responses={200: {"content": {"text/html": {}}, "description": "The report, for the person"}},
)
async def report_html(subject_ref: SubjectRefPath, request_id: UUID, ctx: Context) -> Response:
    content = await reports.document(ctx, subject_ref, request_id, kind="html")
    return Response(content, media_type="text/html; charset=utf-8", headers=DOCUMENT_HEADERS)


@router.post(
    "/subjects/{subject_ref}/report-holds",
    status_code=status.HTTP_202_ACCEPTED,
    tags=["disclosure reports"],
    summary="Hold the person's report back until a date: telling them now would endanger them",
)
async def hold_report(
    subject_ref: SubjectRefPath,
    body: c.ReportHoldIn,
    ctx: Context,
    caller: Annotated[Principal, Allowed(Scope.SUBJECT_REPORT_HOLD)],
) -> c.ReportHoldOut:
    return await reports.place_hold(ctx, subject_ref, body, placed_by=person_ref(caller))
