"""The agency's use cases. Each runs in one unit of work: business rows and outbox rows commit together."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.agency import conferences, consultations, models, notices, reports, repository
from maillage.agency import contracts as c
from maillage.agency.grounds import ALERT_BASES, REFERRAL_BASES, check_grounds
from maillage.agency.sending import AgencyContext, check_known, check_recipients, idempotent, status_url, submit
from maillage.core.clock import as_utc
from maillage.core.crypto.trust import Received, Refused
from maillage.core.messaging.bus import Record
from maillage.core.messaging.envelope import Envelope
from maillage.core.observability.metrics import EVENTS_RECEIVED
from maillage.core.outbox.enqueue import enqueue_dead_letter
from maillage.core.storage.db import unit_of_work
from maillage.core.storage.repository import insert_rows
from maillage.core.storage.retention import OUTBOX, WEBHOOKS, Purge
from maillage.core.web.paging import decode_cursor, decode_key, next_cursor, next_key_cursor
from maillage.core.webhooks import repository as webhooks
from maillage.core.webhooks.delivery import enqueue_for_all, new_secret
from maillage.core.webhooks.models import Webhook
from maillage.domain.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    UnknownDiscloser,
)
from maillage.domain.events import (
    AlertAcknowledged,
    AlertEscalated,
    AlertRaised,
    CaseConferenceClosed,
    CaseConferenceConvened,
    ConsentGranted,
    ConsentWithdrawn,
    ConsultationAnswered,
    ConsultationRequested,
    EventPayload,
    Holder,
    NoticeIssued,
    ReferralCreated,
    ReferralDecision,
    ReferralReason,
    ReferralResponded,
    SubjectReportIssued,
)
from maillage.domain.referrals import InvalidTransition, ReferralState, next_state, state_after_response
from maillage.domain.retention import Stored
from maillage.domain.status import StatusReport
from maillage.domain.vocabulary import LegalBasis, Purpose, Role

MAX_WEBHOOKS = 20


# --- consents -----------------------------------------------------------------------------------


def _consent_out(row: models.ConsentRow, *, agency_id: str) -> c.ConsentOut:
    # A consent registered before disclosers were recorded allows its registering agency alone.
    return c.ConsentOut.model_validate({**row.model_dump(), "disclosers": row.disclosers or [agency_id]})


def _disclosers(ctx: AgencyContext, body: c.ConsentIn) -> tuple[str, ...]:
    """The partners the person allows to disclose under the consent, besides this agency: agencies of the
    network only (a sector is no one a person could agree to)."""
    unknown = [d for d in body.disclosers if d not in ctx.network.by_id]
    if unknown:
        raise UnknownDiscloser(
            "problem.unknown-discloser.not-in-network", names=", ".join(unknown), extensions={"unknown": unknown}
        )
    return tuple(dict.fromkeys(d for d in body.disclosers if d != ctx.agency.id))


async def register_consent(
    ctx: AgencyContext, body: c.ConsentIn, *, idempotency_key: str | None, obtained_by: str | None = None
) -> c.ConsentOut:
    check_known(ctx, body.recipients)
    others = _disclosers(ctx, body)

    async def work(session: AsyncSession) -> c.ConsentOut:
        consent_id = uuid4()
        payload = ConsentGranted(
            consent_id=consent_id,
            categories=body.categories,
            recipients=body.recipients,
            purposes=body.purposes,
            valid_until=body.valid_until,
            obtained_by=obtained_by,
            notice_version=body.notice_version,
            notice_language=body.notice_language,
            disclosers=others,
        )
        event_id = await submit(
            session, ctx, payload, subject_ref=body.subject_ref, role=Role.OTHER, purpose=body.purposes[0]
        )
        row = models.ConsentRow(
            consent_id=str(consent_id),
            subject_ref=body.subject_ref,
            categories=list(body.categories),
            recipients=list(body.recipients),
            purposes=list(body.purposes),
            valid_until=body.valid_until,
            granted_at=ctx.clock.now(),
            event_id=event_id,
            obtained_by=obtained_by,
            notice_version=body.notice_version,
            notice_language=body.notice_language,
            disclosers=[ctx.agency.id, *others],
        )
        session.add(row)
        return _consent_out(row, agency_id=ctx.agency.id)

    return await idempotent(ctx, idempotency_key, body, work, c.ConsentOut)


async def withdraw_consent(ctx: AgencyContext, consent_id: UUID) -> c.ConsentOut:
    async with unit_of_work(ctx.sessions) as session:
        row = await repository.consent(session, str(consent_id))
        if row is None:
            raise NotFound("problem.not-found.consent")
        if row.withdrawn_at is None:
            withdrawn = ConsentWithdrawn(consent_id=consent_id)
            purpose = Purpose(row.purposes[0])
            event_id = await submit(
                session, ctx, withdrawn, subject_ref=row.subject_ref, role=Role.OTHER, purpose=purpose
            )
            row.withdrawn_at = ctx.clock.now()
            row.event_id = event_id
            session.add(row)
        result = _consent_out(row, agency_id=ctx.agency.id)
    ctx.relay.notify()
    return result


async def list_consents(ctx: AgencyContext, subject_ref: str) -> list[c.ConsentOut]:
    async with ctx.sessions() as session:
        rows = await repository.consents_of(session, subject_ref)
    return [_consent_out(r, agency_id=ctx.agency.id) for r in rows]


# --- referrals ----------------------------------------------------------------------------------


async def send_referral(ctx: AgencyContext, body: c.ReferralIn, *, idempotency_key: str | None) -> c.ReferralAccepted:
    if body.reason is ReferralReason.OTHER and body.reason_comment is None:
        raise InvalidRequest("problem.validation.reason-comment-required")
    on_grounds = check_grounds(
        ctx.network,
        basis=body.legal_basis,
        allowed=REFERRAL_BASES,
        recipients=(body.recipient,),
        legal_reference=body.legal_reference,
        conference_id=body.conference_id,
    )
    pole = check_recipients(ctx, (body.recipient,), pole=body.pole)

    async def work(session: AsyncSession) -> c.ReferralAccepted:
        payload = ReferralCreated(
            **body.data.model_dump(),
            **on_grounds,
            reason=body.reason,
            reason_comment=body.reason_comment,
            categories_needed=body.categories_needed,
        )
        event_id = await submit(
            session,
            ctx,
            payload,
            subject_ref=body.subject_ref,
            role=body.subject_role,
            basis=body.legal_basis,
            purpose=body.purpose,
            recipients=(body.recipient,),
            pole=pole,
        )
        await insert_rows(
            session,
            models.ReferralRow,
            [
                {
                    "referral_id": event_id,
                    "direction": "out",
                    "counterpart": body.recipient,
                    "subject_ref": body.subject_ref,
                    "subject_role": body.subject_role.value,
                    "state": ReferralState.SENT,
                    "updated_at": ctx.clock.now(),
                    "reason": body.reason.value,
                    "reason_comment": body.reason_comment,
                }
            ],
        )
        return c.ReferralAccepted(event_id=event_id, referral_id=event_id, status_url=status_url(event_id))

    return await idempotent(ctx, idempotency_key, body, work, c.ReferralAccepted)


async def respond_to_referral(ctx: AgencyContext, referral_id: str, body: c.ReferralResponseIn) -> c.ReferralOut:
    if body.decision is ReferralDecision.DECLINED and body.decline_reason is None:
        raise InvalidRequest("problem.validation.decline-reason-required")
    async with unit_of_work(ctx.sessions) as session:
        row = await repository.referral(session, referral_id)
        if row is None or row.direction != "in":
            raise NotFound("problem.not-found.referral-received")
        try:
            row.state = next_state(row.state, body.decision)
        except InvalidTransition:
            raise Conflict(
                "problem.conflict.referral-transition", state=row.state.value, decision=body.decision.value
            ) from None
        payload = ReferralResponded(
            referral_id=UUID(referral_id),
            decision=body.decision,
            decline_reason=body.decline_reason,
            narrative=body.comment,
        )
        await submit(
            session,
            ctx,
            payload,
            subject_ref=row.subject_ref,
            role=Role(row.subject_role),
            purpose=Purpose.REFERRAL,
            recipients=(row.counterpart,),
        )
        row.decline_reason = body.decline_reason.value if body.decline_reason else None
        row.updated_at = ctx.clock.now()
        session.add(row)
        result = c.ReferralOut.model_validate(row, from_attributes=True)
    ctx.relay.notify()
    return result


async def get_referral(ctx: AgencyContext, referral_id: str) -> c.ReferralOut:
    async with ctx.sessions() as session:
        row = await repository.referral(session, referral_id)
    if row is None:
        raise NotFound("problem.not-found.referral")
    return c.ReferralOut.model_validate(row, from_attributes=True)


# --- alerts -------------------------------------------------------------------------------------


async def raise_alert(
    ctx: AgencyContext, body: c.AlertIn, *, idempotency_key: str | None, raised_by: str | None = None
) -> c.AcceptedEvent:
    if body.legal_basis is LegalBasis.DANGER and body.justification is None:
        raise InvalidRequest("problem.validation.danger-justification-required")
    on_grounds = check_grounds(
        ctx.network,
        basis=body.legal_basis,
        allowed=ALERT_BASES,
        recipients=body.recipients,
        legal_reference=body.legal_reference,
        conference_id=body.conference_id,
    )
    pole = check_recipients(ctx, body.recipients, pole=body.pole)

    async def work(session: AsyncSession) -> c.AcceptedEvent:
        payload = AlertRaised(
            **body.data.model_dump(),
            **on_grounds,
            severity=body.severity,
            kind=body.kind,
            justification=body.justification,
            raised_by=raised_by,
        )
        event_id = await submit(
            session,
            ctx,
            payload,
            subject_ref=body.subject_ref,
            role=body.subject_role,
            basis=body.legal_basis,
            purpose=body.purpose,
            recipients=body.recipients,
            pole=pole,
        )
        if body.legal_basis is LegalBasis.DANGER:  # a second professional of this agency reviews it (art. 458bis)
            session.add(_awaiting_review(body, alert_id=event_id, raised_by=raised_by, at=ctx.clock.now()))
        return c.AcceptedEvent(event_id=event_id, status_url=status_url(event_id))

    return await idempotent(ctx, idempotency_key, body, work, c.AcceptedEvent)


def _awaiting_review(body: c.AlertIn, *, alert_id: str, raised_by: str | None, at: datetime) -> models.AlertReview:
    """The review record of a danger alert, kept with its justification by the agency that raised it."""
    return models.AlertReview(
        alert_id=alert_id,
        subject_ref=body.subject_ref,
        subject_role=body.subject_role.value,
        purpose=body.purpose.value,
        severity=body.severity.value,
        kind=body.kind.value,
        justification=body.justification or "",
        recipients=list(body.recipients),
        raised_by=raised_by,
        raised_at=at,
    )


# --- reading ------------------------------------------------------------------------------------


async def inbox(ctx: AgencyContext, *, cursor: str | None, limit: int) -> c.InboxPage:
    async with ctx.sessions() as session:
        rows = await repository.inbox_page(session, after=decode_cursor(cursor), limit=limit)
    items = [c.InboxEntry.model_validate(r, from_attributes=True) for r in rows]
    return c.InboxPage(items=items, next_cursor=next_cursor([r.seq or 0 for r in rows], limit=limit))


async def event_fate(ctx: AgencyContext, event_id: str) -> c.EventFate:
    async with ctx.sessions() as session:
        sent = await repository.sent_event(session, event_id)
        if sent is None:
            raise NotFound("problem.not-found.sent-event")
        (fate,) = await _fates(session, [sent])
    return fate


async def sent_events(ctx: AgencyContext, *, pending: bool, cursor: str | None, limit: int) -> c.EventFatePage:
    """What became of the events this agency sent, oldest first: a page costs four queries, whatever its size."""
    async with ctx.sessions() as session:
        sent = await repository.sent_events_page(session, after=decode_key(cursor), limit=limit, pending=pending)
        fates = await _fates(session, sent)
    return c.EventFatePage(items=fates, next_cursor=next_key_cursor([s.event_id for s in sent], limit=limit))


async def _fates(session: AsyncSession, sent: Sequence[models.SentEvent]) -> list[c.EventFate]:
    ids = [s.event_id for s in sent]
    statuses: dict[str, list[models.RecipientStatus]] = defaultdict(list)
    for row in await repository.statuses_of(session, ids):
        statuses[row.event_id].append(row)
    progress = {(p.alert_id, p.recipient): p for p in await repository.alert_progress_of(session, ids)}
    receipts = await notices.receipts(session, ids)

    def outcome(row: models.RecipientStatus) -> c.RecipientOutcome:
        out = c.RecipientOutcome.model_validate(row, from_attributes=True)
        alert = progress.get((row.event_id, row.recipient))
        return (
            out
            if alert is None
            else out.model_copy(update={"alert": c.AlertProgressOut.model_validate(alert, from_attributes=True)})
        )

    def state(rows: list[models.RecipientStatus]) -> str:
        return "pending" if not rows else ("rejected" if rows[0].outcome == "rejected" else "decided")

    return [
        c.EventFate(
            event_id=s.event_id,
            type=s.type,
            subject_ref=s.subject_ref,
            created_at=s.created_at,
            state=state(statuses[s.event_id]),
            recipients=[outcome(row) for row in statuses[s.event_id]],
            notices=receipts[s.event_id],
        )
        for s in sent
    ]


# --- webhooks -----------------------------------------------------------------------------------


def _lifetime(ctx: AgencyContext, seconds: int | None) -> timedelta:
    """At most the service's maximum; compared as seconds first, since a huge value overflows a timedelta
    (found by `maillage chaos`'s generated requests: 1 in 1,020 answered 503)."""
    longest = ctx.webhook_max_lifetime
    return timedelta(seconds=min(seconds, longest.total_seconds())) if seconds else longest


def _webhook_out(hook: Webhook, *, now: datetime) -> c.WebhookOut:
    expires_at = as_utc(hook.expires_at or now)
    return c.WebhookOut(
        id=hook.id,
        url=hook.url,
        created_at=as_utc(hook.created_at),
        expires_at=expires_at,
        expired=expires_at <= now,
        registered_by=hook.registered_by,
    )


async def _webhook(session: AsyncSession, webhook_id: str) -> Webhook:
    hook = await webhooks.webhook(session, webhook_id)
    if hook is None:
        raise NotFound("problem.not-found.webhook")
    return hook


async def register_webhook(ctx: AgencyContext, body: c.WebhookIn, *, registered_by: str) -> c.WebhookCreated:
    url = str(body.url)
    await ctx.egress.check(url)
    now = ctx.clock.now()
    hook = Webhook(
        id=str(uuid4()),
        url=url,
        secret=new_secret(),
        created_at=now,
        expires_at=now + _lifetime(ctx, body.lifetime_seconds),
        registered_by=registered_by,
    )
    async with unit_of_work(ctx.sessions) as session:
        registered = await webhooks.count(session)
        if registered >= MAX_WEBHOOKS:
            # Each webhook is one more copy of every arrival leaving the agency: a few are enough.
            raise Conflict("problem.conflict.too-many-webhooks", count=registered)
        session.add(hook)
    return c.WebhookCreated(**_webhook_out(hook, now=now).model_dump(), secret=hook.secret)


async def list_webhooks(ctx: AgencyContext) -> list[c.WebhookOut]:
    async with ctx.sessions() as session:
        hooks = await webhooks.webhooks(session)
    now = ctx.clock.now()
    return [_webhook_out(h, now=now) for h in hooks]


async def delete_webhook(ctx: AgencyContext, webhook_id: str) -> None:
    """The registration goes, and with it every delivery kept for it (their bodies carry case data)."""
    async with unit_of_work(ctx.sessions) as session:
        await webhooks.delete_webhook(session, await _webhook(session, webhook_id))


async def rotate_webhook_secret(ctx: AgencyContext, webhook_id: str) -> c.WebhookSecret:
    async with unit_of_work(ctx.sessions) as session:
        hook = await _webhook(session, webhook_id)
        hook.secret = new_secret()
        session.add(hook)
    return c.WebhookSecret(id=hook.id, secret=hook.secret)


async def renew_webhook(ctx: AgencyContext, webhook_id: str, body: c.WebhookRenewal) -> c.WebhookOut:
    """A new lifetime from now; the destination is checked again, as the network file may have changed."""
    async with ctx.sessions() as session:
        url = (await _webhook(session, webhook_id)).url
    await ctx.egress.check(url)
    now = ctx.clock.now()
    async with unit_of_work(ctx.sessions) as session:
        hook = await _webhook(session, webhook_id)
        hook.expires_at = now + _lifetime(ctx, body.lifetime_seconds)
        session.add(hook)
    return _webhook_out(hook, now=now)


async def webhook_deliveries(
    ctx: AgencyContext, webhook_id: str, *, cursor: str | None, limit: int
) -> c.WebhookDeliveryPage:
    async with ctx.sessions() as session:
        await _webhook(session, webhook_id)
        deliveries, attempts = await webhooks.deliveries_page(
            session, webhook_id, after=decode_cursor(cursor), limit=limit
        )
    by_delivery: dict[int, list[c.WebhookAttemptOut]] = {}
    for attempt in attempts:
        by_delivery.setdefault(attempt.delivery_id, []).append(
            c.WebhookAttemptOut.model_validate(attempt, from_attributes=True)
        )
    items = [
        c.WebhookDeliveryOut(
            id=d.id or 0,
            event_id=d.event_id,
            state=d.state,
            attempts=by_delivery.get(d.id or 0, []),
            next_attempt_at=as_utc(d.next_attempt_at) if d.state == "pending" else None,
        )
        for d in deliveries
    ]
    return c.WebhookDeliveryPage(items=items, next_cursor=next_cursor([d.id or 0 for d in deliveries], limit=limit))


# --- what the gateway delivers and reports ------------------------------------------------------


async def take_in(
    ctx: AgencyContext,
    *,
    deliveries: list[Received],
    reports: list[StatusReport],
    refused: list[tuple[Record, Refused]],
) -> int:
    """Store a batch of deliveries and status reports, and dead-letter what could not be read, all in one
    transaction; returns how many webhook pushes it made due."""
    async with unit_of_work(ctx.sessions) as session:
        for record, refusal in refused:
            await _dead_letter(session, ctx, record, refusal)
        pushes = await _store_deliveries(session, ctx, deliveries)
        await _store_statuses(session, reports)
    if refused or any(isinstance(d.payload, NoticeIssued) for d in deliveries):
        ctx.relay.notify()  # the dead letters leave through the outbox, like every other record
    return pushes


async def _dead_letter(session: AsyncSession, ctx: AgencyContext, record: Record, refusal: Refused) -> None:
    await enqueue_dead_letter(
        session,
        record,
        topic=ctx.topics.dead_letters_of(ctx.agency.id),
        service=f"agency:{ctx.agency.id}",
        reason=refusal.reason,
        detail=refusal.detail,
    )


def _inbox_item(envelope: Envelope, payload: EventPayload, *, received_at: datetime) -> dict[str, Any]:
    """An inbox row's columns (`models.InboxItem`), which are also what its webhook push says."""
    return {
        "event_id": envelope.id,
        "type": envelope.type.value,
        "source_agency": envelope.agency_id,
        "subject_ref": envelope.subject,
        "subject_role": envelope.subjectrole.value,
        "legal_basis": envelope.legalbasis.value,
        "purpose": envelope.purpose.value,
        "sent_at": envelope.time,
        "received_at": received_at,
        "data": payload.model_dump(mode="json", exclude_none=True),
    }


async def _store_deliveries(session: AsyncSession, ctx: AgencyContext, deliveries: list[Received]) -> int:
    if not deliveries:
        return 0
    known = await repository.inbox_known(session, [d.envelope.id for d in deliveries])
    now = ctx.clock.now()
    for_webhooks: list[tuple[str, dict[str, object]]] = []
    for envelope, payload in ((d.envelope, d.payload) for d in deliveries):
        if isinstance(payload, SubjectReportIssued):
            # A document for the person, kept with their request only: never in the inbox, nor pushed.
            await reports.follow(session, envelope, payload, now=now)
            continue
        if isinstance(payload, NoticeIssued) and payload.holder is not Holder.AGENCY:
            continue  # for the dispatcher that answers for this agency's on-call (it reads this topic too)
        if envelope.id in known:
            if isinstance(payload, NoticeIssued) and payload.erase:
                # Redelivered with what it erased (its batch stored, its offsets not committed): what came back
                # in this batch goes again; the receipt was sent the first time.
                _, erased = await notices.heed(session, payload, subject_ref=envelope.subject, now=now)
                for_webhooks = [(event_id, body) for event_id, body in for_webhooks if event_id not in erased]
            continue  # a redelivered record: stored once
        known.add(envelope.id)
        item = _inbox_item(envelope, payload, received_at=now)
        await insert_rows(session, models.InboxItem, [item])
        EVENTS_RECEIVED.labels(ctx.agency.id, envelope.type.value).inc()
        for_webhooks.append((envelope.id, c.InboxEntry.model_validate(item).model_dump(mode="json")))
        await _follow(session, envelope, payload, now=now)
        if isinstance(payload, NoticeIssued):
            receipt, erased = await notices.heed(session, payload, subject_ref=envelope.subject, now=now)
            for_webhooks = [(event_id, body) for event_id, body in for_webhooks if event_id not in erased]
            role, purpose = envelope.subjectrole, envelope.purpose
            await submit(session, ctx, receipt, subject_ref=envelope.subject, role=role, purpose=purpose)
    return await enqueue_for_all(session, for_webhooks, now=now)


async def _follow(session: AsyncSession, envelope: Envelope, payload: EventPayload, *, now: datetime) -> None:
    """What an arrival changes in the agency's referrals and in the progress of the alerts it raised."""
    if isinstance(payload, ReferralCreated):
        # New to the inbox in this transaction, so new to the referrals too: no need to look.
        await insert_rows(
            session,
            models.ReferralRow,
            [
                {
                    "referral_id": envelope.id,
                    "direction": "in",
                    "counterpart": envelope.agency_id,
                    "subject_ref": envelope.subject,
                    "subject_role": envelope.subjectrole.value,
                    "state": ReferralState.RECEIVED,
                    "updated_at": now,
                    "reason": payload.reason.value,
                    "reason_comment": payload.reason_comment,
                }
            ],
        )
    elif isinstance(payload, AlertAcknowledged | AlertEscalated):
        await _follow_alert(session, envelope.agency_id, payload)
    elif isinstance(payload, ReferralResponded):
        await _follow_response(session, payload, now=now)
    elif isinstance(payload, ConsultationRequested | ConsultationAnswered):
        await consultations.follow(session, envelope, payload, now=now)
    elif isinstance(payload, CaseConferenceConvened | CaseConferenceClosed):
        await conferences.follow(session, envelope, payload, now=now)


async def _follow_response(session: AsyncSession, payload: ReferralResponded, *, now: datetime) -> None:
    row = await repository.referral(session, str(payload.referral_id))
    if row is not None and row.direction == "out":
        row.state = state_after_response(payload.decision)
        row.decline_reason = payload.decline_reason.value if payload.decline_reason else None
        row.updated_at = now
        session.add(row)


async def _follow_alert(session: AsyncSession, recipient: str, payload: AlertAcknowledged | AlertEscalated) -> None:
    row = await repository.alert_progress(session, str(payload.alert_id), recipient)
    if row is None:
        row = models.AlertProgress(alert_id=str(payload.alert_id), recipient=recipient, state="", level=payload.level)
    if row.state == "acknowledged":
        return  # final: a late escalation notice changes nothing
    row.level = payload.level
    if isinstance(payload, AlertAcknowledged):
        row.state, row.acknowledged_at = "acknowledged", payload.acknowledged_at
    else:
        row.state = "unacknowledged" if payload.exhausted else "escalated"
        row.escalated_at = payload.escalated_at
    session.add(row)


async def _store_statuses(session: AsyncSession, reports: list[StatusReport]) -> None:
    if not reports:
        return
    seen = await repository.statuses_known(session, [r.event_id for r in reports])
    rows: list[dict[str, Any]] = []
    for report in reports:
        await notices.keep_receipts(session, report)
        for line in report.recipients:
            if (report.event_id, line.recipient) in seen:
                continue  # a redelivered status report: stored once
            seen.add((report.event_id, line.recipient))
            rows.append({"event_id": report.event_id, "decided_at": report.decided_at, **line.model_dump(mode="json")})
    await insert_rows(session, models.RecipientStatus, rows)


def retention(ctx: AgencyContext) -> Purge:
    """The agency's purge: `purge(now)` removes what the network file's `[retention]` says is past its time."""
    return Purge(
        service=f"agency:{ctx.agency.id}",
        sessions=ctx.sessions,
        retention=ctx.network.retention,
        steps={
            Stored.INBOX_ITEMS: (repository.purge_inbox,),
            Stored.CLOSED_REFERRALS: (repository.purge_closed_referrals,),
            Stored.SENT_EVENTS: (repository.purge_sent_events,),
            Stored.ENDED_CONSENTS: (repository.purge_ended_consents,),
            Stored.IDEMPOTENCY_KEYS: (repository.purge_idempotency_keys,),
            **OUTBOX,
            **WEBHOOKS,
        },
    )
