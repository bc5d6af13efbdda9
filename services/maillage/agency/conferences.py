"""Case conferences (art. 458ter) at the agency: convened and closed by an authorised agency, followed by
their participants. What may be disclosed under one is the gateway's decision."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.agency import contracts as c
from maillage.agency import models, repository
from maillage.agency import sending as s
from maillage.core.clock import as_utc
from maillage.core.messaging.envelope import Envelope, conference_ref
from maillage.core.storage.db import unit_of_work
from maillage.domain.errors import InvalidRequest, NotAConvener, NotFound, UnknownRecipient
from maillage.domain.events import CaseConferenceClosed, CaseConferenceConvened, ConferencePurpose, EventPayload
from maillage.domain.vocabulary import LegalBasis, Purpose, Role


async def convene(
    ctx: s.AgencyContext, body: c.CaseConferenceIn, *, idempotency_key: str | None
) -> c.CaseConferenceOut:
    if not ctx.agency.convenes_case_conferences:
        raise NotAConvener("problem.not-a-convener.not-authorised")
    strangers = [p for p in body.participants if p not in ctx.network.by_id]
    if strangers:
        raise UnknownRecipient(
            "problem.unknown-recipient.not-agencies", names=", ".join(strangers), extensions={"unknown": strangers}
        )
    if body.ends_at <= ctx.clock.now():
        raise InvalidRequest("problem.validation.conference-ends-in-past")

    async def work(session: AsyncSession) -> c.CaseConferenceOut:
        conference_id = uuid4()
        payload = CaseConferenceConvened(conference_id=conference_id, **body.model_dump())
        event_id = await _announce(session, ctx, payload, participants=body.participants)
        row = models.CaseConferenceRow(
            conference_id=str(conference_id),
            convener=ctx.agency.id,
            authorisation=body.authorisation,
            purpose=body.purpose.value,
            participants=list(body.participants),
            subjects=list(body.subjects),
            ends_at=body.ends_at,
            event_id=event_id,
        )
        session.add(row)
        return _out(row, now=ctx.clock.now())

    return await s.idempotent(ctx, idempotency_key, body, work, c.CaseConferenceOut)


async def close(ctx: s.AgencyContext, conference_id: UUID) -> c.CaseConferenceOut:
    """Closed once, by its convener: from then on the gateway denies whatever is sent under it."""
    async with unit_of_work(ctx.sessions) as session:
        row = await repository.case_conference(session, str(conference_id))
        if row is None or row.convener != ctx.agency.id:
            raise NotFound("problem.not-found.conference-convened")
        if row.closed_at is None:
            await _announce(
                session, ctx, CaseConferenceClosed(conference_id=conference_id), participants=row.participants
            )
            row.closed_at = ctx.clock.now()
            session.add(row)
        result = _out(row, now=ctx.clock.now())
    ctx.relay.notify()
    return result


async def get(ctx: s.AgencyContext, conference_id: UUID) -> c.CaseConferenceOut:
    async with ctx.sessions() as session:
        row = await repository.case_conference(session, str(conference_id))
    if row is None:
        raise NotFound("problem.not-found.conference")
    return _out(row, now=ctx.clock.now())


async def follow(session: AsyncSession, envelope: Envelope, payload: EventPayload, *, now: datetime) -> None:
    """A participant keeps the conferences it takes part in, as their convener announced them."""
    if isinstance(payload, CaseConferenceConvened):
        if await repository.case_conference(session, str(payload.conference_id)) is None:
            session.add(
                models.CaseConferenceRow(
                    conference_id=str(payload.conference_id),
                    convener=envelope.agency_id,
                    authorisation=payload.authorisation,
                    purpose=payload.purpose.value,
                    participants=list(payload.participants),
                    subjects=list(payload.subjects),
                    ends_at=payload.ends_at,
                    event_id=envelope.id,
                )
            )
    elif isinstance(payload, CaseConferenceClosed):
        row = await repository.case_conference(session, str(payload.conference_id))
        if row is not None and row.convener == envelope.agency_id and row.closed_at is None:
            row.closed_at = now
            session.add(row)


async def _announce(
    session: AsyncSession,
    ctx: s.AgencyContext,
    payload: CaseConferenceConvened | CaseConferenceClosed,
    *,
    participants: list[str] | tuple[str, ...],
) -> str:
    # Keyed by the conference itself: its closing can never overtake its convening on the way to the gateway.
    return await s.submit(
        session,
        ctx,
        payload,
        subject_ref=conference_ref(str(payload.conference_id)),
        role=Role.OTHER,
        basis=LegalBasis.CASE_CONFERENCE,
        purpose=Purpose.CASE_CONFERENCE,
        recipients=tuple(p for p in participants if p != ctx.agency.id),
    )


def _out(row: models.CaseConferenceRow, *, now: datetime) -> c.CaseConferenceOut:
    ends_at = as_utc(row.ends_at)
    state = "closed" if row.closed_at else ("ended" if ends_at <= now else "open")
    return c.CaseConferenceOut(
        conference_id=UUID(row.conference_id),
        convener=row.convener,
        authorisation=row.authorisation,
        purpose=ConferencePurpose(row.purpose),
        participants=row.participants,
        subjects=row.subjects,
        ends_at=ends_at,
        closed_at=as_utc(row.closed_at) if row.closed_at else None,
        state=state,
        event_id=row.event_id,
    )
