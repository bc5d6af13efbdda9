"""Sending an event of this agency's, and what every use case shares: the context, the Pôle an event belongs
to, the check of its recipients, idempotent requests. Below every use case: each imports it, none is imported."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import orjson
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.agency import models, repository
from maillage.core.clock import Clock, SystemClock
from maillage.core.config.network import AgencyConfig, Network, NetworkError
from maillage.core.crypto.keys import GATEWAY
from maillage.core.crypto.trust import Trust
from maillage.core.messaging.topics import Topics
from maillage.core.observability.metrics import EVENTS_SUBMITTED
from maillage.core.outbox.enqueue import enqueue
from maillage.core.outbox.relay import OutboxRelay
from maillage.core.storage.db import unit_of_work
from maillage.core.storage.repository import insert_rows
from maillage.core.webhooks.egress import EgressPolicy
from maillage.domain.errors import IdempotencyKeyReused, PoleRequired, UnknownRecipient
from maillage.domain.events import EventPayload
from maillage.domain.vocabulary import LegalBasis, Purpose, Role, Sector

T = TypeVar("T", bound=BaseModel)


@dataclass
class AgencyContext:
    agency: AgencyConfig
    network: Network
    topics: Topics
    sessions: async_sessionmaker[AsyncSession]
    relay: OutboxRelay
    trust: Trust
    clock: Clock = field(default_factory=SystemClock)
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    webhook_max_lifetime: timedelta = timedelta(days=30)


# --- submitting events --------------------------------------------------------------------------


async def submit(
    session: AsyncSession,
    ctx: AgencyContext,
    payload: EventPayload,
    *,
    subject_ref: str,
    role: Role,
    purpose: Purpose,
    basis: LegalBasis = LegalBasis.CONSENT,
    recipients: tuple[str, ...] = (),
    pole: str | None = None,
) -> str:
    """Seal and put in the outbox an event of this agency's (its relay signs it), and keep what it sent. Its basis
    is consent unless an alert invokes danger; with no recipients it is for the gateway alone (a consent given or
    withdrawn). Its Pôle is the one given, else the agency's only one."""
    now = ctx.clock.now()
    pole = pole or (ctx.agency.poles[0] if len(ctx.agency.poles) == 1 else None)
    await ctx.trust.knowing(GATEWAY)
    envelope = ctx.trust.sealed(
        payload,
        subject_ref=subject_ref,
        role=role,
        basis=basis,
        purpose=purpose,
        at=now,
        recipients=recipients,
        pole=pole,
    )
    event_id = envelope.id
    await enqueue(session, envelope, topic=ctx.topics.submitted, signer=ctx.trust)
    EVENTS_SUBMITTED.labels(ctx.agency.id, payload.event_type.value).inc()
    await insert_rows(
        session,
        models.SentEvent,
        [
            {
                "event_id": event_id,
                "type": payload.event_type.value,
                "subject_ref": subject_ref,
                "recipients": list(recipients),
                "legal_basis": basis.value,
                "created_at": now,
            }
        ],
    )
    return event_id


def check_known(ctx: AgencyContext, recipients: tuple[str, ...]) -> None:
    unknown = [r for r in recipients if not ctx.network.knows(r)]
    if unknown:
        raise UnknownRecipient(
            "problem.unknown-recipient.not-in-network", names=", ".join(unknown), extensions={"unknown": unknown}
        )


def check_recipients(ctx: AgencyContext, recipients: tuple[str, ...], *, pole: str | None = None) -> str | None:
    """The event's Pôle (see `event_pole`), once some agency other than the sender is found in it."""
    check_known(ctx, recipients)
    pole = event_pole(ctx, recipients, asked=pole)
    if not ctx.network.resolve(recipients, sender=ctx.agency.id, pole=pole):
        raise UnknownRecipient("problem.unknown-recipient.no-match")
    return pole


def event_pole(ctx: AgencyContext, recipients: tuple[str, ...], *, asked: str | None) -> str | None:
    """The Pôle asked for, if this agency serves it; else its only one. A sector addressed from an agency
    serving several Pôles must not guess: "the police" of Liège and of Namur are not the same people."""
    try:
        return ctx.network.pole_of(ctx.agency.id, asked=asked)
    except NetworkError:
        if asked is None and not any(r in set(Sector) for r in recipients):
            return None  # agencies named by id only: reached wherever they work, no Pôle needed
        raise PoleRequired.of(ctx.agency.poles, asked=asked) from None


def status_url(event_id: str) -> str:
    return f"/v1/events/{event_id}"


async def idempotent(
    ctx: AgencyContext,
    key: str | None,
    request: BaseModel,
    work: Callable[[AsyncSession], Awaitable[T]],
    response_type: type[T],
) -> T:
    """Run `work` once per Idempotency-Key; a repeat with the same body returns the first answer."""
    if key is None:
        async with unit_of_work(ctx.sessions) as session:
            result = await work(session)
        ctx.relay.notify()
        return result
    digest = hashlib.sha256(orjson.dumps(request.model_dump(mode="json"))).hexdigest()
    scoped_key = f"{type(request).__name__}:{key}"
    try:
        async with unit_of_work(ctx.sessions) as session:
            stored = await repository.idempotency_record(session, scoped_key)
            if stored is None:
                result = await work(session)
                await insert_rows(
                    session,
                    models.IdempotencyRecord,
                    [
                        {
                            "key": scoped_key,
                            "request_hash": digest,
                            "status_code": 201,
                            "response": result.model_dump(mode="json"),
                            "created_at": ctx.clock.now(),
                        }
                    ],
                )
    except IntegrityError:  # a concurrent request with the same key won the race
        async with ctx.sessions() as session:
            stored = await repository.idempotency_record(session, scoped_key)
        assert stored is not None
    if stored is None:
        ctx.relay.notify()
        return result
    if stored.request_hash != digest:
        raise IdempotencyKeyReused("problem.idempotency-key-reused.other-body")
    return response_type.model_validate(stored.response)
