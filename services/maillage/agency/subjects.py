"""A person's rights at the agency that holds them: erasure across every copy, and the correction of a role
recorded wrongly. Each leaves as an event for the gateway, which tells every other holder (gateway/erasure.py);
their confirmations come back as notice receipts (agency/notices.py)."""

from __future__ import annotations

from uuid import UUID, uuid4

from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.agency import contracts as c
from maillage.agency import repository
from maillage.agency.sending import AgencyContext, status_url, submit
from maillage.core.storage.db import unit_of_work
from maillage.core.webhooks import repository as webhooks
from maillage.domain.errors import NotFound
from maillage.domain.events import (
    ErasureGround,
    EventType,
    NoticeKind,
    SubjectErasureRequested,
    SubjectRoleCorrected,
)
from maillage.domain.vocabulary import Purpose, Role


async def request_erasure(ctx: AgencyContext, subject_ref: str, body: c.ErasureIn) -> c.AcceptedEvent:
    """The person erased here at once, and the request on its way to every other holder: in one transaction,
    so that the request never leaves without this agency's own erasure, nor the other way round."""
    async with unit_of_work(ctx.sessions) as session:
        role = await _role_of(session, subject_ref)
        payload = SubjectErasureRequested(erasure_id=uuid4(), ground=body.ground)
        event_id = await submit(
            session, ctx, payload, subject_ref=subject_ref, role=role, purpose=Purpose.SAFETY_PLANNING
        )
        erased = await repository.erase_subject(session, subject_ref, keep=[event_id])
        await webhooks.erase_deliveries_of(session, erased)
    ctx.relay.notify()
    return c.AcceptedEvent(event_id=event_id, status_url=f"/v1/erasures/{event_id}")


async def erasure(ctx: AgencyContext, erasure_id: str) -> c.ErasureOut:
    """Per holder, pending or confirmed: what the requester (and the person, through it) is told."""
    async with ctx.sessions() as session:
        sent = await repository.sent_event(session, erasure_id)
        if sent is None or sent.type != EventType.SUBJECT_ERASURE_REQUESTED.value:
            raise NotFound("problem.not-found.erasure")
        statuses = await repository.statuses_of(session, [erasure_id])
        receipts = await repository.notice_receipts_of(session, [erasure_id])
    holders = [
        c.ErasureHolder(
            agency=r.recipient,
            holder=r.holder,
            state="confirmed" if r.acknowledged_at else "pending",
            confirmed_at=r.acknowledged_at,
            erased=r.erased,
        )
        for r in receipts
    ]
    if any(s.outcome == "rejected" for s in statuses):
        state = "rejected"
    elif not statuses:
        state = "sent"
    else:
        state = "pending" if any(h.state == "pending" for h in holders) else "confirmed"
    return c.ErasureOut(
        erasure_id=erasure_id,
        subject_ref=sent.subject_ref,
        requested_at=sent.created_at,
        state=state,
        holders=holders,
    )


async def correct_role(ctx: AgencyContext, subject_ref: str, body: c.RoleCorrectionIn) -> c.AcceptedEvent:
    """The person's role corrected: the gateway applies it from now on and tells each past recipient which of
    its deliveries the right role would not have allowed (`GET /v1/events/{event_id}` lists them)."""
    async with unit_of_work(ctx.sessions) as session:
        payload = SubjectRoleCorrected(role=body.role, previous=body.previous, reason=body.reason)
        event_id = await submit(
            session, ctx, payload, subject_ref=subject_ref, role=body.role, purpose=Purpose.SAFETY_PLANNING
        )
        await repository.correct_role(session, subject_ref, body.role.value)
    ctx.relay.notify()
    return c.AcceptedEvent(event_id=event_id, status_url=status_url(event_id))


async def erase_misrouted(ctx: AgencyContext, subject_ref: str, correction_id: str) -> c.AcceptedEvent:
    """One call: exactly the recipients a role correction flagged are asked to erase exactly the events they
    received under the wrong role that the right role would not have allowed them."""
    async with unit_of_work(ctx.sessions) as session:
        sent = await repository.sent_event(session, correction_id)
        if sent is None or sent.type != EventType.SUBJECT_ROLE_CORRECTED.value or sent.subject_ref != subject_ref:
            raise NotFound("problem.not-found.role-correction")
        receipts = await repository.notice_receipts_of(session, [correction_id])
        if not any(r.kind == NoticeKind.ROLE_CORRECTED.value and r.misrouted for r in receipts):
            raise NotFound("problem.not-found.nothing-flagged")
        payload = SubjectErasureRequested(
            erasure_id=uuid4(), ground=ErasureGround.WRONG_ROLE, correction=UUID(correction_id)
        )
        role = await _role_of(session, subject_ref)
        event_id = await submit(
            session, ctx, payload, subject_ref=subject_ref, role=role, purpose=Purpose.SAFETY_PLANNING
        )
    ctx.relay.notify()
    return c.AcceptedEvent(event_id=event_id, status_url=f"/v1/erasures/{event_id}")


async def _role_of(session: AsyncSession, subject_ref: str) -> Role:
    """The role this agency last knew the person under (the gateway applies a corrected one anyway)."""
    return await repository.role_of(session, subject_ref) or Role.OTHER
