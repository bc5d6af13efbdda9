"""The person's disclosure report at an agency that holds them: the request registered here (and logged, without
personal data), the document the gateway answers with, kept and served here only; and holds placed here.

The network-wide view of the person exists only as this document, for the person: it never joins the agency's
inbox, webhooks or listings.
"""

from __future__ import annotations

import base64
import logging
from datetime import datetime
from uuid import UUID, uuid4

from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.agency import contracts as c
from maillage.agency import models, repository
from maillage.agency.sending import AgencyContext, idempotent, submit
from maillage.core.clock import as_utc
from maillage.core.messaging.envelope import Envelope
from maillage.core.storage.db import unit_of_work
from maillage.domain.errors import Conflict, InvalidRequest, NotFound
from maillage.domain.events import (
    MAX_HOLD_DAYS,
    HoldReason,
    ReportState,
    SubjectReportHeld,
    SubjectReportIssued,
    SubjectReportRequested,
)
from maillage.domain.subject_report import hold_refusal
from maillage.domain.vocabulary import LegalBasis, Purpose, Role

log = logging.getLogger(__name__)
PENDING = "pending"
REFUSED = "refused"
# The person's right of access (GDPR art. 15), and its restriction for their safety (art. 23): the law, not
# a consent, is what these events rest on; they concern the person whatever their role.
BASIS, PURPOSE, ROLE = LegalBasis.LEGAL_OBLIGATION, Purpose.SAFETY_PLANNING, Role.OTHER


def _url(subject_ref: str, request_id: str) -> str:
    return f"/v1/subjects/{subject_ref}/report-requests/{request_id}"


async def request(
    ctx: AgencyContext, subject_ref: str, body: c.ReportRequestIn, *, requested_by: str, idempotency_key: str | None
) -> c.ReportRequestOut:
    """Register the person's request and send it to the gateway, in one transaction."""

    async def work(session: AsyncSession) -> c.ReportRequestOut:
        request_id = uuid4()
        payload = SubjectReportRequested(request_id=request_id, language=body.language)
        event_id = await submit(session, ctx, payload, subject_ref=subject_ref, role=ROLE, basis=BASIS, purpose=PURPOSE)
        row = models.ReportRequestRow(
            request_id=str(request_id),
            event_id=event_id,
            subject_ref=subject_ref,
            language=body.language,
            requested_by=requested_by,
            requested_at=ctx.clock.now(),
            state=PENDING,
        )
        session.add(row)
        # A request of the person's is itself a trace worth keeping; no personal data in it.
        log.info(
            "disclosure report requested",
            extra={"agency": ctx.agency.id, "by": requested_by, "request_id": row.request_id, "event_id": event_id},
        )
        return _out(row, refusal=None)

    return await idempotent(ctx, idempotency_key, body, work, c.ReportRequestOut)


async def get(ctx: AgencyContext, subject_ref: str, request_id: UUID) -> c.ReportRequestOut:
    async with ctx.sessions() as session:
        row = await _row(session, subject_ref, request_id)
        refusal = await _refusal(session, row) if row.state == PENDING else None
    return _out(row, refusal=refusal)


async def document(ctx: AgencyContext, subject_ref: str, request_id: UUID, *, kind: str) -> bytes:
    """The document as the gateway drew it up, `pdf` or `html`; only once issued."""
    async with ctx.sessions() as session:
        row = await _row(session, subject_ref, request_id)
    content = row.pdf if kind == "pdf" else (row.html or "").encode()
    if row.state != ReportState.ISSUED.value or not content:
        if row.state == ReportState.HELD.value:
            raise Conflict("problem.conflict.report-held")
        if row.state == "refused":
            raise Conflict("problem.conflict.report-refused")
        raise Conflict("problem.conflict.report-pending")
    log.info("disclosure report read", extra={"agency": ctx.agency.id, "request_id": row.request_id, "format": kind})
    return content


async def place_hold(ctx: AgencyContext, subject_ref: str, body: c.ReportHoldIn, *, placed_by: str) -> c.ReportHoldOut:
    now, until = ctx.clock.now(), as_utc(body.until)
    if until <= now:
        raise InvalidRequest("problem.validation.hold-ends-before")
    if hold_refusal(placed_at=now, until=until) is not None:
        raise InvalidRequest("problem.validation.hold-too-long", days=MAX_HOLD_DAYS)
    hold_id = uuid4()
    payload = SubjectReportHeld(hold_id=hold_id, until=until, reason=body.reason, placed_by=placed_by)
    async with unit_of_work(ctx.sessions) as session:
        event_id = await submit(session, ctx, payload, subject_ref=subject_ref, role=ROLE, basis=BASIS, purpose=PURPOSE)
        row = models.ReportHoldRow(
            hold_id=str(hold_id),
            event_id=event_id,
            subject_ref=subject_ref,
            until=until,
            reason=body.reason.value,
            placed_by=placed_by,
            placed_at=now,
        )
        session.add(row)
    ctx.relay.notify()
    log.info("disclosure report held", extra={"agency": ctx.agency.id, "by": placed_by, "hold_id": row.hold_id})
    return c.ReportHoldOut(
        hold_id=row.hold_id,
        event_id=event_id,
        subject_ref=subject_ref,
        until=until,
        reason=body.reason,
        placed_by=placed_by,
        placed_at=now,
    )


async def follow(session: AsyncSession, envelope: Envelope, payload: SubjectReportIssued, *, now: datetime) -> None:
    """The gateway's answer to a request registered here: kept with the request, nowhere else. A redelivered
    answer changes nothing."""
    row = await repository.report_request(session, str(payload.request_id))
    if row is None or row.subject_ref != envelope.subject or row.state != PENDING:
        return
    row.state, row.answered_at = payload.state.value, now
    if payload.state is ReportState.ISSUED:
        row.disclosures, row.html = payload.disclosures, payload.html
        row.pdf = base64.b64decode(payload.pdf or "")
    else:
        row.held_until, row.hold_reasons = payload.held_until, [r.value for r in payload.hold_reasons]
    session.add(row)


async def _row(session: AsyncSession, subject_ref: str, request_id: UUID) -> models.ReportRequestRow:
    row = await repository.report_request(session, str(request_id))
    if row is None or row.subject_ref != subject_ref:
        raise NotFound("problem.not-found.report-request")
    return row


async def _refusal(session: AsyncSession, row: models.ReportRequestRow) -> str | None:
    """Why the gateway refused the request, if it did (its status report on the request's event)."""
    for status in await repository.statuses_of(session, [row.event_id]):
        if status.outcome == "rejected":
            return status.reason or "rejected"
    return None


def _out(row: models.ReportRequestRow, *, refusal: str | None) -> c.ReportRequestOut:
    url = _url(row.subject_ref, row.request_id)
    issued = row.state == ReportState.ISSUED.value
    return c.ReportRequestOut(
        request_id=row.request_id,
        subject_ref=row.subject_ref,
        language=row.language,
        state=REFUSED if refusal else row.state,
        requested_at=as_utc(row.requested_at),
        answered_at=as_utc(row.answered_at) if row.answered_at else None,
        disclosures=row.disclosures,
        held_until=as_utc(row.held_until) if row.held_until else None,
        hold_reasons=[HoldReason(r) for r in row.hold_reasons],
        refusal=refusal,
        status_url=url,
        pdf_url=f"{url}/document.pdf" if issued else None,
        html_url=f"{url}/document.html" if issued else None,
    )
