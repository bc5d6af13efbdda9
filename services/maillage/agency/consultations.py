"""The agency's anonymous consultations: put a situation to the Pôle's desk, answer it at the desk, read the answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.agency import contracts as c
from maillage.agency import models, repository, sending
from maillage.core.config.network import AgencyConfig, NetworkError
from maillage.core.messaging.envelope import Envelope, new_consultation_ref
from maillage.core.storage.db import unit_of_work
from maillage.domain.errors import Conflict, Forbidden, NoConsultationDesk, NotFound, PoleRequired
from maillage.domain.events import ConsultationAnswered, ConsultationQuestion, ConsultationRequested
from maillage.domain.vocabulary import LegalBasis, Purpose, Role


@dataclass(frozen=True)
class Asked:
    """What a consultation's envelope says of it: its reference, Pôle and role, and when it was asked."""

    ref: str
    pole: str
    role: Role
    at: datetime


# Advice on how severe and how dangerous a situation is: a risk assessment, whatever is asked.
PURPOSE = Purpose.RISK_ASSESSMENT


def _desk(ctx: sending.AgencyContext, asked: str | None) -> tuple[str, AgencyConfig]:
    """The Pôle the consultation is for, and its desk."""
    try:
        pole = ctx.network.pole_of(ctx.agency.id, asked=asked)
    except NetworkError:
        raise PoleRequired.of(ctx.agency.poles, asked=asked) from None
    desk = ctx.network.consultation_desk(pole)
    if desk is None or desk.id == ctx.agency.id:
        raise NoConsultationDesk("problem.no-consultation-desk.none-other", pole=pole)
    return pole, desk


async def ask(
    ctx: sending.AgencyContext, body: c.ConsultationIn, *, idempotency_key: str | None
) -> c.ConsultationAccepted:
    pole, desk = _desk(ctx, body.pole)

    async def work(session: AsyncSession) -> c.ConsultationAccepted:
        payload = ConsultationRequested.model_validate(
            body.model_dump(exclude={"pole", "subject_role"}, exclude_none=True)
        )
        # A fresh random reference, never the person's: the desk can link two consultations to no one.
        ref = new_consultation_ref()
        event_id = await sending.submit(
            session,
            ctx,
            payload,
            subject_ref=ref,
            role=body.subject_role,
            purpose=PURPOSE,
            basis=LegalBasis.ANONYMOUS,
            recipients=(desk.id,),
            pole=pole,
        )
        asked = Asked(ref=ref, pole=pole, role=body.subject_role, at=ctx.clock.now())
        session.add(_row(event_id, payload, asked, direction="out", counterpart=desk.id))
        status_url = sending.status_url(event_id)
        return c.ConsultationAccepted(
            event_id=event_id, consultation_id=event_id, consultation_ref=ref, desk=desk.id, status_url=status_url
        )

    return await sending.idempotent(ctx, idempotency_key, body, work, c.ConsultationAccepted)


async def answer(ctx: sending.AgencyContext, consultation_id: str, body: c.ConsultationAnswerIn) -> c.ConsultationOut:
    if not ctx.agency.consultation_desk:
        raise Forbidden("problem.forbidden.desk-only")
    async with unit_of_work(ctx.sessions) as session:
        row = await repository.consultation(session, consultation_id)
        if row is None or row.direction != "in":
            raise NotFound("problem.not-found.consultation-put")
        if row.state == "answered":
            raise Conflict("problem.conflict.consultation-answered")
        payload = ConsultationAnswered(consultation_id=UUID(consultation_id), **body.model_dump())
        await sending.submit(
            session,
            ctx,
            payload,
            subject_ref=row.consultation_ref,
            role=Role(row.subject_role),
            purpose=PURPOSE,
            basis=LegalBasis.ANONYMOUS,
            recipients=(row.counterpart,),
            pole=row.pole or None,
        )
        row.state, row.answered_at = "answered", ctx.clock.now()
        row.answer = body.model_dump(mode="json", exclude_none=True)
        session.add(row)
        result = _out(row)
    ctx.relay.notify()
    return result


async def get(ctx: sending.AgencyContext, consultation_id: str) -> c.ConsultationOut:
    async with ctx.sessions() as session:
        row = await repository.consultation(session, consultation_id)
    if row is None:
        raise NotFound("problem.not-found.consultation")
    return _out(row)


async def follow(
    session: AsyncSession,
    envelope: Envelope,
    payload: ConsultationRequested | ConsultationAnswered,
    *,
    now: datetime,
) -> None:
    """A consultation arrived at the desk, or the desk's answer at the asker."""
    if isinstance(payload, ConsultationRequested):
        # New to the inbox in this transaction, so new here too.
        asked = Asked(ref=envelope.subject, pole=envelope.pole or "", role=envelope.subjectrole, at=envelope.time)
        session.add(_row(envelope.id, payload, asked, direction="in", counterpart=envelope.agency_id))
        return
    row = await repository.consultation(session, str(payload.consultation_id))
    if row is None or row.direction != "out" or row.counterpart != envelope.agency_id or row.answer:
        return  # not a consultation of this agency's, or answered already: the first answer stays
    row.state, row.answered_at = "answered", now
    row.answer = payload.model_dump(mode="json", exclude_none=True, exclude={"consultation_id"})
    session.add(row)


def _row(
    event_id: str, payload: ConsultationRequested, asked: Asked, *, direction: str, counterpart: str
) -> models.ConsultationRow:
    return models.ConsultationRow(
        consultation_id=event_id,
        direction=direction,
        counterpart=counterpart,
        consultation_ref=asked.ref,
        pole=asked.pole,
        subject_role=asked.role.value,
        questions=[q.value for q in payload.questions],
        state="pending",
        asked_at=asked.at,
    )


def _out(row: models.ConsultationRow) -> c.ConsultationOut:
    answer = c.ConsultationAnswerOut.model_validate(row.answer) if row.answer else None
    return c.ConsultationOut(
        consultation_id=row.consultation_id,
        consultation_ref=row.consultation_ref,
        direction="out" if row.direction == "out" else "in",
        counterpart=row.counterpart,
        pole=row.pole,
        subject_role=Role(row.subject_role),
        questions=[ConsultationQuestion(q) for q in row.questions],
        state="answered" if row.state == "answered" else "pending",
        asked_at=row.asked_at,
        answered_at=row.answered_at,
        answer=answer,
    )
