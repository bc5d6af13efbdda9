"""Art. 458bis reviews at the raising agency: a second professional reads the justification here and decides."""

from __future__ import annotations

from uuid import UUID

from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.agency import contracts as c
from maillage.agency import models, repository
from maillage.agency.sending import AgencyContext, submit
from maillage.core.storage.db import unit_of_work
from maillage.core.web.paging import decode_cursor, next_cursor
from maillage.domain.errors import AlreadyReviewed, Forbidden, NotFound, SelfReview
from maillage.domain.events import DisclosureReviewed
from maillage.domain.review import may_review
from maillage.domain.vocabulary import LegalBasis, Purpose, Role


async def reviews(ctx: AgencyContext, *, pending: bool, cursor: str | None, limit: int) -> c.ReviewPage:
    async with ctx.sessions() as session:
        rows = await repository.reviews_page(session, after=decode_cursor(cursor), limit=limit, pending=pending)
    return c.ReviewPage(
        items=[_line(row) for row in rows],
        next_cursor=next_cursor([row.seq or 0 for row in rows], limit=limit),
    )


async def review(ctx: AgencyContext, alert_id: str) -> c.ReviewOut:
    async with ctx.sessions() as session:
        row = await _row(session, alert_id)
        disclosed_to = await repository.disclosed_under_danger(session, alert_id)
    return _out(row, disclosed_to=disclosed_to)


async def decide(ctx: AgencyContext, alert_id: str, body: c.ReviewIn, *, reviewer: str) -> c.ReviewOut:
    """`reviewer` approves or rejects the alert's danger disclosures; the decision leaves as an event, in the
    same transaction, for the gateway's audit chain (and, on a rejection, its recipients' erasure)."""
    async with unit_of_work(ctx.sessions) as session:
        row = await _row(session, alert_id)
        if row.decision is not None:
            raise AlreadyReviewed("problem.already-reviewed.one-decision")
        _check_reviewer(ctx, row, reviewer=reviewer)
        payload = DisclosureReviewed(alert_id=UUID(alert_id), decision=body.decision, reviewer=reviewer)
        row.review_event_id = await submit(
            session,
            ctx,
            payload,
            subject_ref=row.subject_ref,
            role=Role(row.subject_role),
            purpose=Purpose(row.purpose),
            basis=LegalBasis.DANGER,
        )
        row.decision, row.reviewer, row.comment = body.decision.value, reviewer, body.comment
        row.decided_at = ctx.clock.now()
        session.add(row)
        disclosed_to = await repository.disclosed_under_danger(session, alert_id)
        return _out(row, disclosed_to=disclosed_to)


def _check_reviewer(ctx: AgencyContext, row: models.AlertReview, *, reviewer: str) -> None:
    here = ctx.agency.id  # the token was issued by this agency for its own service
    if may_review(reviewer=reviewer, reviewer_agency=here, raised_by=row.raised_by, raising_agency=here):
        return
    if row.raised_by is None:
        raise Forbidden("problem.forbidden.raiser-unknown")
    raise SelfReview("problem.self-review.second-professional")


async def _row(session: AsyncSession, alert_id: str) -> models.AlertReview:
    row = await repository.review(session, alert_id)
    if row is None:
        raise NotFound("problem.not-found.danger-alert")
    return row


def _line(row: models.AlertReview) -> c.ReviewLine:
    return c.ReviewLine(
        alert_id=row.alert_id,
        severity=row.severity,
        kind=row.kind,
        raised_by=row.raised_by,
        raised_at=row.raised_at,
        status=row.decision or "pending",
        decided_at=row.decided_at,
    )


def _out(row: models.AlertReview, *, disclosed_to: list[str]) -> c.ReviewOut:
    return c.ReviewOut(
        **_line(row).model_dump(),
        subject_ref=row.subject_ref,
        subject_role=row.subject_role,
        justification=row.justification,
        recipients=row.recipients,
        disclosed_to=disclosed_to,
        reviewer=row.reviewer,
        comment=row.comment,
        review_event_id=row.review_event_id,
    )
