"""Kafka handlers of the agency: what the gateway delivers to it, and the fate of what it sent."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from pydantic import ValidationError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.agency.contracts import InboxEntry
from maillage.agency.models import AlertProgress, InboxItem, RecipientStatus, ReferralRow
from maillage.agency.services import AgencyContext
from maillage.core.crypto.keys import GATEWAY
from maillage.core.crypto.trust import Refused
from maillage.core.messaging.bus import Record, header
from maillage.core.messaging.envelope import Envelope
from maillage.core.observability.metrics import EVENTS_RECEIVED
from maillage.core.outbox.enqueue import enqueue_dead_letter
from maillage.core.storage.db import unit_of_work
from maillage.core.webhooks.delivery import enqueue_for_all
from maillage.domain.events import (
    AlertAcknowledged,
    AlertEscalated,
    EventPayload,
    EventType,
    ReferralResponded,
)
from maillage.domain.referrals import ReferralState, state_after_response
from maillage.domain.status import SOURCE_HEADER, StatusReport

log = logging.getLogger(__name__)


class AgencyHandlers:
    def __init__(self, ctx: AgencyContext, *, on_inbox: Callable[[], None] | None = None) -> None:
        self.ctx = ctx
        self.on_inbox = on_inbox
        self.dead_letters = 0

    async def handle(self, records: list[Record]) -> None:
        deliveries = [r for r in records if r.topic == self.ctx.topics.deliver(self.ctx.agency.id)]
        statuses = [
            r
            for r in records
            if r.topic == self.ctx.topics.status(self.ctx.agency.id)
            and header(list(r.headers), SOURCE_HEADER) == self.ctx.agency.id
        ]
        if not deliveries and not statuses:
            return  # only reports about other agencies' events: nothing to store
        dead_before = self.dead_letters
        async with unit_of_work(self.ctx.sessions) as session:
            pushes = await self._store_deliveries(session, deliveries)
            await self._store_statuses(session, statuses)
        if self.dead_letters != dead_before:
            self.ctx.relay.notify()  # the dead letters leave through the outbox, like every other record
        if pushes and self.on_inbox is not None:
            self.on_inbox()  # webhook deliveries are due now: no need to wait for the next poll

    def _dead_letter(self, session: AsyncSession, record: Record, reason: str, detail: str) -> None:
        enqueue_dead_letter(
            session,
            record,
            topic=self.ctx.topics.dead_letters_of(self.ctx.agency.id),
            service=f"agency:{self.ctx.agency.id}",
            reason=reason,
            detail=detail,
        )
        self.dead_letters += 1

    def _parse(self, session: AsyncSession, record: Record) -> tuple[Envelope, EventPayload] | None:
        """Only what the gateway signed, sealed to this agency and valid is stored; the rest is dead-lettered."""
        try:
            received = self.ctx.trust.receive(record, signer=GATEWAY)
        except Refused as refused:
            self._dead_letter(session, record, refused.reason, refused.detail)
            return None
        assert received is not None  # every type is taken
        return received.envelope, received.payload

    async def _store_deliveries(self, session: AsyncSession, records: list[Record]) -> int:
        parsed = [p for r in records if (p := self._parse(session, r)) is not None]
        if not parsed:
            return 0
        ids = [env.id for env, _ in parsed]
        known = set((await session.exec(select(InboxItem.event_id).where(col(InboxItem.event_id).in_(ids)))).all())
        now = self.ctx.clock.now()
        for_webhooks: list[tuple[str, dict[str, object]]] = []
        for envelope, payload in parsed:
            if envelope.id in known:
                continue  # a redelivered record: stored once
            known.add(envelope.id)
            item = InboxItem(
                event_id=envelope.id,
                type=envelope.type.value,
                source_agency=envelope.agency_id,
                subject_ref=envelope.subject,
                subject_role=envelope.subjectrole.value,
                legal_basis=envelope.legalbasis.value,
                purpose=envelope.purpose.value,
                sent_at=envelope.time,
                received_at=now,
                data=payload.model_dump(mode="json", exclude_none=True),
            )
            session.add(item)
            EVENTS_RECEIVED.labels(self.ctx.agency.id, envelope.type.value).inc()
            for_webhooks.append(
                (envelope.id, InboxEntry.model_validate(item, from_attributes=True).model_dump(mode="json"))
            )
            await self._follow_referral(session, envelope, payload, now=now)
        return await enqueue_for_all(session, for_webhooks, now=now)

    async def _follow_referral(
        self, session: AsyncSession, envelope: Envelope, payload: EventPayload, *, now: datetime
    ) -> None:
        if envelope.type is EventType.REFERRAL_CREATED:
            # New to the inbox in this transaction, so new to the referrals too: no need to look.
            session.add(
                ReferralRow(
                    referral_id=envelope.id,
                    direction="in",
                    counterpart=envelope.agency_id,
                    subject_ref=envelope.subject,
                    subject_role=envelope.subjectrole.value,
                    state=ReferralState.RECEIVED,
                    updated_at=now,
                )
            )
        elif isinstance(payload, AlertAcknowledged | AlertEscalated):
            await self._follow_alert(session, envelope.agency_id, payload)
        elif isinstance(payload, ReferralResponded):
            row = await session.get(ReferralRow, str(payload.referral_id))
            if row is not None and row.direction == "out":
                row.state = state_after_response(payload.decision)
                row.decline_reason = payload.decline_reason.value if payload.decline_reason else None
                row.updated_at = now
                session.add(row)

    async def _follow_alert(
        self, session: AsyncSession, recipient: str, payload: AlertAcknowledged | AlertEscalated
    ) -> None:
        row = await session.get(AlertProgress, (str(payload.alert_id), recipient))
        if row is None:
            row = AlertProgress(alert_id=str(payload.alert_id), recipient=recipient, state="", level=payload.level)
        if row.state == "acknowledged":
            return  # final: a late escalation notice changes nothing
        row.level = payload.level
        if isinstance(payload, AlertAcknowledged):
            row.state, row.acknowledged_at = "acknowledged", payload.acknowledged_at
        else:
            row.state = "unacknowledged" if payload.exhausted else "escalated"
            row.escalated_at = payload.escalated_at
        session.add(row)

    async def _store_statuses(self, session: AsyncSession, records: list[Record]) -> None:
        reports = []
        for record in records:
            try:
                reports.append(StatusReport.model_validate_json(record.value or b""))
            except ValidationError:
                self._dead_letter(session, record, "schema", "status report")
        if not reports:
            return
        rows = await session.exec(
            select(RecipientStatus.event_id, RecipientStatus.recipient).where(
                col(RecipientStatus.event_id).in_([r.event_id for r in reports])
            )
        )
        seen = set(rows.all())
        for report in reports:
            for line in report.recipients:
                if (report.event_id, line.recipient) in seen:
                    continue  # a redelivered status report: stored once
                seen.add((report.event_id, line.recipient))
                session.add(
                    RecipientStatus(
                        event_id=report.event_id, decided_at=report.decided_at, **line.model_dump(mode="json")
                    )
                )
