"""Retention as policy: each service purges what finished longer ago than the network file's `[retention]`
says, on its own schedule; the test moves the service's clock, never sleeps for a period.

A real broker, each service's real database (SQLite, and PostgreSQL with `--databases`); the rows are written
straight into the service's tables, as months of traffic would have left them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.agency import repository
from maillage.agency.app import create_app as create_agency_app
from maillage.agency.models import SCHEMA as AGENCY_SCHEMA
from maillage.agency.models import ConsentRow, InboxItem, RecipientStatus, ReferralRow, SentEvent
from maillage.agency.settings import AgencySettings
from maillage.core.clock import ManualClock
from maillage.core.config.network import StorageRetention
from maillage.core.lifecycle import running
from maillage.core.outbox.models import OutboxRecord
from maillage.core.polling import eventually
from maillage.core.sessions.models import SignInSession, UsedInvitation
from maillage.core.storage.db import unit_of_work
from maillage.core.storage.retention import Purge
from maillage.core.webhooks.models import Webhook, WebhookAttempt, WebhookDelivery
from maillage.dispatcher.models import OncallAlert, Paging
from maillage.domain.escalation import AlertState
from maillage.domain.referrals import ReferralState
from maillage.domain.retention import Stored
from maillage.gateway.app import running_gateway
from maillage.gateway.models import GrantRow, ProcessedEvent
from maillage.monitor.app import create_app as create_monitor_app
from maillage.monitor.models import DeadLetter
from maillage.monitor.settings import MonitorSettings
from tests.oncall import POLICE, dispatcher
from tests.support import Pole, serving

pytestmark = [pytest.mark.integration, pytest.mark.postgresql]

AGENCY = "refuge-liege"
DAY = timedelta(days=1)
Sessions = async_sessionmaker[AsyncSession]


def _id() -> str:
    return str(uuid4())


async def _add(sessions: Sessions, *rows: SQLModel) -> None:
    async with unit_of_work(sessions) as session:
        for row in rows:
            session.add(row)
            await session.flush()  # in order: a webhook before its deliveries, a delivery before its attempts


async def _there(sessions: Sessions, model: type[SQLModel], key: Any) -> SQLModel | None:
    async with sessions() as session:
        return await session.get(model, key)


def _gone(sessions: Sessions, *rows: tuple[type[SQLModel], Any]) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return all([await _there(sessions, model, key) is None for model, key in rows])

    return probe


@asynccontextmanager
async def agency(pole: Pole, clock: ManualClock) -> AsyncIterator[Sessions]:
    settings = AgencySettings(**pole.common(f"agency-{AGENCY}"), agency_id=AGENCY)
    app = create_agency_app(settings, clock=clock)
    async with serving(app, token=pole.token(AGENCY)):
        sessions: Sessions = app.state.context.sessions
        yield sessions


def _inbox(event_id: str, *, received_at: datetime) -> InboxItem:
    return InboxItem(
        event_id=event_id,
        type="maillage.referral.created.v1",
        source_agency="cpas-liege",
        subject_ref=f"s-{_id()}",
        subject_role="victim",
        legal_basis="consent",
        purpose="referral",
        sent_at=received_at,
        received_at=received_at,
        data={"narrative": "marker"},
    )


def _referral(referral_id: str, state: ReferralState, *, updated_at: datetime, direction: str = "in") -> ReferralRow:
    return ReferralRow(
        referral_id=referral_id,
        direction=direction,
        counterpart="cpas-liege",
        subject_ref=f"s-{_id()}",
        subject_role="victim",
        state=state,
        updated_at=updated_at,
    )


def _sent(event_id: str, *, at: datetime) -> SentEvent:
    return SentEvent(
        event_id=event_id,
        type="maillage.referral.created.v1",
        subject_ref=f"s-{_id()}",
        recipients=["social"],
        legal_basis="consent",
        created_at=at,
    )


def _consent(*, granted_at: datetime, withdrawn_at: datetime | None, valid_until: datetime | None) -> ConsentRow:
    return ConsentRow(
        consent_id=_id(),
        subject_ref=f"s-{_id()}",
        categories=["identity"],
        recipients=["social"],
        purposes=["referral"],
        valid_until=valid_until,
        granted_at=granted_at,
        withdrawn_at=withdrawn_at,
        event_id=_id(),
    )


def _outbox(*, created_at: datetime, published_at: datetime | None) -> OutboxRecord:
    return OutboxRecord(
        event_id=_id(),
        topic="maillage.submitted",
        key=b"k",
        value=b"sealed",
        headers=b"[]",
        created_at=created_at,
        published_at=published_at,
    )


def _delivery(webhook_id: str, state: str, *, at: datetime) -> WebhookDelivery:
    return WebhookDelivery(
        webhook_id=webhook_id, event_id=_id(), body=b'{"marker": 1}', state=state, next_attempt_at=at, created_at=at
    )


async def test_an_agency_purges_what_finished_past_its_period_and_keeps_the_rest(pole: Pole) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0)
    clock = ManualClock(t0)
    async with agency(pole, clock) as sessions:
        open_item = _id()
        old = _inbox(_id(), received_at=t0 - 366 * DAY)
        young = _inbox(_id(), received_at=t0 - 300 * DAY)
        # A referral received long ago that its recipient still works on: its item stays with it.
        still_open = _inbox(open_item, received_at=t0 - 800 * DAY)
        closed_old, declined_young, sent_old, sent_open = _id(), _id(), _id(), _id()
        withdrawn = _consent(granted_at=t0 - 900 * DAY, withdrawn_at=t0 - 731 * DAY, valid_until=None)
        expired = _consent(granted_at=t0 - 900 * DAY, withdrawn_at=None, valid_until=t0 - 731 * DAY)
        in_force = _consent(granted_at=t0 - 2000 * DAY, withdrawn_at=None, valid_until=t0 + 100 * DAY)
        published = _outbox(created_at=t0 - 8 * DAY, published_at=t0 - 8 * DAY)
        unpublished = _outbox(created_at=t0 - 400 * DAY, published_at=None)
        # Switched off: no attempt of the pending delivery changes it during the test.
        hook = Webhook(id=_id(), url="https://cms.example/hook", secret="s", created_at=t0 - 100 * DAY, active=False)
        delivered = _delivery(hook.id, "delivered", at=t0 - 31 * DAY)
        pending = _delivery(hook.id, "pending", at=t0 - 31 * DAY)
        given_up = _delivery(hook.id, "failed", at=t0 - 366 * DAY)
        await _add(
            sessions,
            old,
            young,
            still_open,
            _referral(open_item, ReferralState.ACCEPTED, updated_at=t0 - 800 * DAY),
            _referral(closed_old, ReferralState.CLOSED, updated_at=t0 - 731 * DAY),
            _referral(declined_young, ReferralState.DECLINED, updated_at=t0 - 700 * DAY),
            _sent(sent_old, at=t0 - 731 * DAY),
            RecipientStatus(event_id=sent_old, recipient="cpas-liege", outcome="delivered", decided_at=t0 - 731 * DAY),
            _sent(sent_open, at=t0 - 900 * DAY),
            _referral(sent_open, ReferralState.SENT, updated_at=t0 - 900 * DAY, direction="out"),
            withdrawn,
            expired,
            in_force,
            published,
            unpublished,
        )
        async with unit_of_work(sessions) as session:  # a delivery finishes with its last attempt, never before it
            session.add_all([hook, delivered, pending, given_up])
            await session.flush()
            last_call = WebhookAttempt(delivery_id=given_up.id or 0, attempt=8, at=t0 - 366 * DAY, status_code=None)
            session.add(WebhookAttempt(delivery_id=delivered.id or 0, attempt=1, at=t0 - 31 * DAY, status_code=204))
            session.add(last_call)

        clock.advance(DAY)  # past the next purge (hourly)

        await eventually(
            _gone(
                sessions,
                (InboxItem, old.seq),
                (ReferralRow, closed_old),
                (SentEvent, sent_old),
                (ConsentRow, withdrawn.consent_id),
                (ConsentRow, expired.consent_id),
                (OutboxRecord, published.id),
                (WebhookDelivery, given_up.id),
                (WebhookAttempt, last_call.id),
            ),
            what="the agency's rows past their period to be purged",
        )

        async def body_erased() -> bool:
            row = await _there(sessions, WebhookDelivery, delivered.id)
            return isinstance(row, WebhookDelivery) and row.body == b""

        await eventually(body_erased, what="the delivered webhook's body to be erased")
        purged = {"service": f"agency:{AGENCY}", "kind": "inbox_items"}
        assert (REGISTRY.get_sample_value("maillage_retention_purged_total", purged) or 0) >= 1
        async with sessions() as session:
            kept_rows: list[tuple[type[SQLModel], Any]] = [
                (InboxItem, young.seq),
                (InboxItem, still_open.seq),
                (ReferralRow, open_item),
                (ReferralRow, declined_young),
                (SentEvent, sent_open),
                (ConsentRow, in_force.consent_id),
                (OutboxRecord, unpublished.id),
            ]
            for model, key in kept_rows:
                assert await session.get(model, key) is not None, (model.__name__, key)
            kept = await session.get(WebhookDelivery, pending.id)
            assert kept is not None and kept.body == b'{"marker": 1}'
            assert (await session.get(WebhookDelivery, delivered.id)) is not None  # its metadata stays
            statuses = await session.exec(select(RecipientStatus).where(RecipientStatus.event_id == sent_old))
            assert statuses.all() == []  # gone with the event they were about

        # Seventy days on, the item received 300 days before is past its year; the open referral's stays.
        clock.advance(70 * DAY)
        await eventually(_gone(sessions, (InboxItem, young.seq)), what="the younger item to reach its period")
        assert await _there(sessions, InboxItem, still_open.seq) is not None


async def test_the_dispatcher_purges_acknowledged_alerts_and_their_pages_never_one_still_unacknowledged(
    pole: Pole,
) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0)
    clock = ManualClock(t0)
    async with dispatcher(pole, clock) as running:
        sessions = running.dispatcher.sessions
        acknowledged_old = _alert(AlertState.ACKNOWLEDGED, received_at=t0 - 400 * DAY, acknowledged_at=t0 - 366 * DAY)
        acknowledged_young = _alert(AlertState.ACKNOWLEDGED, received_at=t0 - 400 * DAY, acknowledged_at=t0 - 10 * DAY)
        unacknowledged = _alert(AlertState.UNACKNOWLEDGED, received_at=t0 - 1000 * DAY, acknowledged_at=None)
        old_page = _page(acknowledged_old.alert_id, at=t0 - 400 * DAY)
        unacknowledged_page = _page(unacknowledged.alert_id, at=t0 - 1000 * DAY)
        ended = SignInSession(
            id=_id(),
            issuer=POLICE,
            subject="inp-dubois",
            scopes=["alerts:ack"],
            secret_sha256="0" * 64,
            rotated_at=t0 - 40 * DAY,
            expires_at=t0 - 31 * DAY,
        )
        used = UsedInvitation(jti=_id(), expires_at=t0 - 31 * DAY)
        await _add(sessions, acknowledged_old, acknowledged_young, unacknowledged, old_page, unacknowledged_page)
        await _add(sessions, ended, used)

        clock.advance(DAY)

        await eventually(
            _gone(
                sessions,
                (OncallAlert, acknowledged_old.id),
                (Paging, old_page.id),
                (SignInSession, ended.id),
                (UsedInvitation, used.jti),
            ),
            what="the dispatcher's rows past their period to be purged",
        )
        kept: list[tuple[type[SQLModel], Any]] = [
            (OncallAlert, acknowledged_young.id),
            (OncallAlert, unacknowledged.id),
            (Paging, unacknowledged_page.id),
        ]
        for model, key in kept:
            assert await _there(sessions, model, key) is not None, (model.__name__, key)


def _alert(state: AlertState, *, received_at: datetime, acknowledged_at: datetime | None) -> OncallAlert:
    return OncallAlert(
        agency_id=POLICE,
        alert_id=_id(),
        source_agency=AGENCY,
        subject_ref=f"s-{_id()}",
        subject_role="victim",
        severity="high",
        kind="threat",
        data={"narrative": "marker"},
        raised_at=received_at,
        received_at=received_at,
        state=state,
        level_started_at=received_at,
        acknowledged_at=acknowledged_at,
        acknowledged_by="inp-dubois" if acknowledged_at else None,
    )


def _page(alert_id: str, *, at: datetime) -> Paging:
    return Paging(agency_id=POLICE, alert_id=alert_id, level=1, workers=["inp-dubois"], paged_at=at)


async def test_the_gateway_forgets_old_decisions_and_ended_consents_never_a_consent_in_force(pole: Pole) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0)
    clock = ManualClock(t0)
    async with running_gateway(pole.gateway_settings(), clock=clock) as gateway:
        sessions = gateway.sessions
        old, young = _decided(at=t0 - 31 * DAY), _decided(at=t0 - 8 * DAY)
        withdrawn = _grant(withdrawn_at=t0 - 731 * DAY, valid_until=None)
        in_force = _grant(withdrawn_at=None, valid_until=None)
        await _add(sessions, old, young, withdrawn, in_force)

        clock.advance(DAY)

        await eventually(
            _gone(sessions, (ProcessedEvent, old.event_id), (GrantRow, withdrawn.consent_id)),
            what="the gateway's rows past their period to be purged",
        )
        assert await _there(sessions, ProcessedEvent, young.event_id) is not None
        assert await _there(sessions, GrantRow, in_force.consent_id) is not None


async def test_the_monitor_forgets_dead_letters_past_their_period(pole: Pole) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0)
    clock = ManualClock(t0)
    app = create_monitor_app(MonitorSettings(**pole.common("monitor")), clock=clock)
    async with serving(app):
        sessions: Sessions = app.state.monitor.sessions
        old, young = _dead_letter(at=t0 - 91 * DAY, offset=1), _dead_letter(at=t0 - 80 * DAY, offset=2)
        await _add(sessions, old, young)

        clock.advance(DAY)

        await eventually(_gone(sessions, (DeadLetter, old.id)), what="the old dead letter to be purged")
        assert await _there(sessions, DeadLetter, young.id) is not None


def _decided(*, at: datetime) -> ProcessedEvent:
    return ProcessedEvent(event_id=_id(), digest="d", partition=0, offset=0, disclosures=[], decided_at=at)


def _grant(*, withdrawn_at: datetime | None, valid_until: datetime | None) -> GrantRow:
    return GrantRow(
        consent_id=_id(),
        subject_ref=f"s-{_id()}",
        categories=["identity"],
        recipients=["social"],
        purposes=["referral"],
        valid_until=valid_until,
        granted_by=AGENCY,
        withdrawn_at=withdrawn_at,
    )


def _dead_letter(*, at: datetime, offset: int) -> DeadLetter:
    return DeadLetter(
        dlq_topic="maillage.dlq",
        dlq_partition=0,
        dlq_offset=offset,
        reason="schema_invalid",
        detail="",
        service="gateway",
        topic="maillage.submitted",
        at=at,
    )


async def test_a_purge_goes_by_batches_and_says_how_many_rows_of_each_kind_went(pole: Pole) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0)
    settings = AgencySettings(**pole.common(f"agency-{AGENCY}"), agency_id=AGENCY)
    async with running(settings, schema=AGENCY_SCHEMA) as service:
        purge = Purge(
            service="agency:batches",
            sessions=service.sessions,
            retention=StorageRetention(purge_batch=2, inbox_items=30, closed_referrals=-1),
            steps={
                Stored.INBOX_ITEMS: (repository.purge_inbox,),
                Stored.CLOSED_REFERRALS: (repository.purge_closed_referrals,),
            },
        )
        young = _inbox(_id(), received_at=t0 - 29 * DAY)
        closed = _referral(_id(), ReferralState.CLOSED, updated_at=t0 - 5000 * DAY)
        await _add(service.sessions, *(_inbox(_id(), received_at=t0 - (31 + n) * DAY) for n in range(5)), young, closed)

        assert await purge(t0) == {Stored.INBOX_ITEMS: 5}  # closed referrals kept (-1): not even looked at
        assert await purge(t0) == {Stored.INBOX_ITEMS: 0}
        assert await _there(service.sessions, InboxItem, young.seq) is not None
        assert await _there(service.sessions, ReferralRow, closed.referral_id) is not None
