"""The dispatcher's use cases: alerts arriving, time passing, an acknowledgement, what a worker sees, the
alerts operators must know went unanswered, token keys changing.

Each change is one unit of work applying the escalation rule's steps (maillage.domain.escalation): alert and
page rows, the `alert.escalated` / `alert.acknowledged` events for the sender and the operators' reports
through the outbox, the fallback webhook's call. The workers are told once it has committed. Timers are
deadlines in the database, read against an injected clock, so a restart loses none and a test advances time
instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import orjson
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.clock import Clock, SystemClock
from maillage.core.config.network import AgencyConfig, Network
from maillage.core.crypto.keys import GATEWAY, KeyUse
from maillage.core.crypto.trust import Trust
from maillage.core.messaging.bus import Record
from maillage.core.messaging.envelope import Envelope
from maillage.core.messaging.topics import DISPATCHER, Topics
from maillage.core.observability.metrics import ALERT_ACK_SECONDS, ALERT_ESCALATIONS, ALERT_PAGES, ALERTS_RECEIVED
from maillage.core.outbox.enqueue import enqueue, enqueue_dead_letter, enqueue_record
from maillage.core.outbox.relay import OutboxRelay
from maillage.core.sessions.service import SESSION_KID_PREFIX
from maillage.core.storage.db import unit_of_work
from maillage.core.storage.retention import OUTBOX, SIGN_IN, WEBHOOKS, Purge
from maillage.core.web.paging import next_cursor
from maillage.core.webhooks.models import Webhook
from maillage.dispatcher import contracts as c
from maillage.dispatcher import repository, views
from maillage.dispatcher.live import Live, Message, Worker
from maillage.dispatcher.models import OncallAlert
from maillage.domain.errors import NotFound
from maillage.domain.escalation import (
    SEVERITY_RANK,
    Alert,
    AlertState,
    Escalate,
    Exhaust,
    Grace,
    PageWorkers,
    Step,
    acknowledgement_level,
    arrival_steps,
    fold,
    group_into,
    next_steps,
    visible,
)
from maillage.domain.events import (
    AlertAcknowledged,
    AlertEscalated,
    AlertRaised,
    EventPayload,
    NoticeIssued,
    NoticeKind,
    SubjectErasureConfirmed,
)
from maillage.domain.retention import Stored
from maillage.domain.rota import Rota
from maillage.domain.status import DISPATCHER_SOURCE, SOURCE_HEADER, OncallReport
from maillage.domain.vocabulary import LegalBasis, Purpose, Role, Severity

# The rota changes hands at shift boundaries and nobody is notified of that: look again at least this often.
RECHECK = timedelta(seconds=5)
# Shifts turn on the minute at most: whoever came on call is paged for what is open within this delay.
PRESENCE_RECHECK = timedelta(seconds=30)
NOT_YOURS = "problem.not-found.alert-for-you"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    """An agency whose alerts this dispatcher serves: its rota, and its keys (it speaks for the agency)."""

    agency: AgencyConfig
    rota: Rota
    trust: Trust


@dataclass(frozen=True)
class Arrival:
    """An alert delivered to a served agency: verified, opened and valid."""

    agency: str
    envelope: Envelope
    payload: AlertRaised


@dataclass(frozen=True)
class Erasure:
    """A notice to a served agency to erase what it received in some events (a danger disclosure rejected on
    review): the alerts' data go, from the pages and the fallback calls; their paging state stays. With
    `notice` (one addressed to this dispatcher): an erasure it confirms for the agency — of the person's
    every alert here (`subject_erased`), or of the events named — signed with the agency's key."""

    agency: str
    events: tuple[str, ...]
    envelope: Envelope | None = None
    notice: NoticeIssued | None = None


@dataclass(frozen=True)
class Corrected:
    """A person's role, corrected by an agency that holds them: the served agency's alerts about the person
    show it from now on, to the workers who handle them."""

    agency: str
    subject_ref: str
    role: Role


@dataclass(frozen=True)
class Unreadable:
    """A delivered record that is no acceptable alert: a dead letter, with the reason."""

    record: Record
    reason: str
    detail: str


@dataclass
class Notices:
    """What to do once the transaction that decided it has committed."""

    messages: list[tuple[str, str, Message]] = field(default_factory=list)  # (agency, worker, message)
    pages: list[tuple[str, str, frozenset[str]]] = field(default_factory=list)  # (agency, alert id, workers)
    events: bool = False
    fallbacks: bool = False

    def tell(self, agency: str, workers: Collection[str], message: Message) -> None:
        self.messages.extend((agency, worker, message) for worker in workers)


class Dispatcher:
    """The on-call service: what it serves, who is connected, and what it keeps between transactions."""

    def __init__(
        self,
        *,
        network: Network,
        topics: Topics,
        sessions: async_sessionmaker[AsyncSession],
        served: dict[str, Served],
        live: Live,
        relay: OutboxRelay | None = None,
        clock: Clock | None = None,
        webhook_clock: Clock | None = None,
        on_fallback: Callable[[], None] | None = None,
    ) -> None:
        self.network = network
        self.config = network.dispatcher
        self.topics = topics
        self.sessions = sessions
        self.served = served
        self.live = live
        self.relay = relay
        self.clock: Clock = clock or SystemClock()
        # Webhook attempts run on the real clock, whatever clock paces the escalation (a test's manual one).
        self.webhook_clock: Clock = webhook_clock or SystemClock()
        self.on_fallback = on_fallback
        self.started_at = self.clock.now()
        self._wake = asyncio.Event()
        self._paged: dict[tuple[str, str], frozenset[str]] = {}  # a cache of the page table
        self._grace_over = self.config.reconnect_grace_seconds == 0
        self._joined = False
        self._presence_at = self.started_at

    async def start(self) -> None:
        async with self.sessions() as session:
            self._paged = await repository.paged(session)

    def wake(self) -> None:
        """Something changed (an alert arrived, time moved): look at the timers again."""
        self._wake.set()

    def worker_joined(self) -> None:
        """A worker connected: page them for what is open at their level, if they were not already."""
        self._joined = True
        self._wake.set()

    def keys_changed(self) -> None:
        """A key was added or retired: streams opened with a retired token key are closed now."""
        trust = next(iter(self.served.values())).trust if self.served else None
        if trust is None:
            return
        revoked = self.live.revoke(
            lambda kid: kid.startswith(SESSION_KID_PREFIX) or trust.public.get(kid, use=KeyUse.TOKENS) is not None
        )
        if revoked:
            log.warning("streams closed: their token key was retired", extra={"streams": revoked})

    # --- what a worker sees -------------------------------------------------------------------------------

    def levels_of(self, worker: Worker) -> tuple[int, ...]:
        return self.served[worker.agency].rota.levels_of(worker.id, self.clock.now())

    def hello(self, worker: Worker) -> c.Hello:
        return c.Hello(
            worker=worker.id,
            agency=worker.agency,
            agency_name=self.network.agency(worker.agency).name,
            levels=list(self.levels_of(worker)),
            now=self.clock.now(),
        )

    async def open_for(self, worker: Worker) -> list[c.AlertView]:
        """Every alert still open for this worker, the most severe and oldest first."""
        levels = self.levels_of(worker)
        async with self.sessions() as session:
            shown = [
                row
                for row in await repository.shown_at(session, agency=worker.agency)
                if visible(self._alert(row), agency=worker.agency, worker=worker.id, levels=levels)
            ]
            shown.sort(key=lambda row: -SEVERITY_RANK[Severity(row.severity)])
            grouped = [row.alert_id for row in shown if row.grouped > 1]
            members = await repository.members_of(session, agency=worker.agency, primaries=grouped)
        return [self._view(row, members.get(row.alert_id)) for row in shown]

    async def snapshot(self, worker: Worker) -> c.Snapshot:
        return c.Snapshot(alerts=await self.open_for(worker), now=self.clock.now())

    async def unacknowledged(self, *, after: int, limit: int) -> c.UnacknowledgedPage:
        """For operators: alerts every level let pass, without any personal data."""
        async with self.sessions() as session:
            rows = await repository.unacknowledged(session, after=after, limit=limit)
        return c.UnacknowledgedPage(
            items=[views.unanswered(row) for row in rows],
            next_cursor=next_cursor([row.id or 0 for row in rows], limit=limit),
        )

    # --- alerts arriving ----------------------------------------------------------------------------------

    async def receive(self, deliveries: Sequence[Arrival | Erasure | Corrected | Unreadable]) -> None:
        """A batch of deliveries, in one transaction: each alert stored once and paged from level 1, or grouped;
        each unreadable record to the dead letters, leaving with the batch's other effects."""
        notices = Notices()
        async with unit_of_work(self.sessions) as session:
            for delivery in deliveries:
                if isinstance(delivery, Unreadable):
                    await self._dead_letter(session, delivery, notices)
                elif isinstance(delivery, Erasure):
                    await self._erase(session, delivery, notices)
                elif isinstance(delivery, Corrected):
                    await repository.correct_role(
                        session, agency=delivery.agency, subject_ref=delivery.subject_ref, role=delivery.role.value
                    )
                else:
                    await self._arrived(session, delivery, notices)
        self._after(notices)
        self.wake()

    async def _erase(self, session: AsyncSession, erasure: Erasure, notices: Notices) -> None:
        notice, envelope = erasure.notice, erasure.envelope
        if notice is None or envelope is None:
            await repository.erase_alert_data(session, agency=erasure.agency, alert_ids=erasure.events)
            return
        if notice.kind is NoticeKind.SUBJECT_ERASED:
            erased = await repository.erase_subject(session, agency=erasure.agency, subject_ref=envelope.subject)
        else:
            erased = await repository.erase_alerts(session, agency=erasure.agency, alert_ids=erasure.events)
        confirmed = SubjectErasureConfirmed(notice_id=notice.notice_id, acknowledged_at=self.clock.now(), erased=erased)
        trust = self.served[erasure.agency].trust
        await trust.knowing(GATEWAY)
        sealed = trust.sealed(
            confirmed,
            subject_ref=envelope.subject,
            role=envelope.subjectrole,
            basis=envelope.legalbasis,
            purpose=envelope.purpose,
            at=self.clock.now(),
        )
        await enqueue(session, sealed, topic=self.topics.submitted, signer=trust)
        notices.events = True  # the confirmation leaves through the outbox

    async def _dead_letter(self, session: AsyncSession, refused: Unreadable, notices: Notices) -> None:
        topic = self.topics.dead_letters_of(DISPATCHER)
        await enqueue_dead_letter(
            session, refused.record, topic=topic, service="dispatcher", reason=refused.reason, detail=refused.detail
        )
        notices.events = True  # it leaves through the outbox, like the acknowledgements

    async def _arrived(self, session: AsyncSession, arrival: Arrival, notices: Notices) -> None:
        if await repository.known(session, agency=arrival.agency, alert_id=arrival.envelope.id):
            return  # a redelivered record
        now = self.clock.now()
        row = _stored(arrival, now=now)
        ALERTS_RECEIVED.labels(row.agency_id, row.severity).inc()
        primary = await self._group_for(session, row)
        if primary is not None:
            await self._group(session, row, primary, notices)
            return
        session.add(row)
        steps = arrival_steps(
            self._alert(row),
            rota=self.served[row.agency_id].rota,
            connected=self.live.connected(row.agency_id),
            now=now,
            grace=self._grace(now),
        )
        await self._apply(session, {row.alert_id: row}, steps, now=now, notices=notices)

    async def _group_for(self, session: AsyncSession, row: OncallAlert) -> OncallAlert | None:
        paging = {
            a.alert_id: a
            for a in await repository.paging_about(session, agency=row.agency_id, subject_ref=row.subject_ref)
        }
        window = timedelta(seconds=self.config.group_window_seconds)
        primary = group_into(self._alert(row), candidates=map(self._alert, paging.values()), window=window)
        return paging[primary.alert_id] if primary is not None else None

    async def _group(self, session: AsyncSession, row: OncallAlert, primary: OncallAlert, notices: Notices) -> None:
        row.state, row.group_of, row.deadline = AlertState.GROUPED, primary.alert_id, None
        session.add(row)
        folded = fold(self._alert(primary), severity=Severity(row.severity), rota=self.served[row.agency_id].rota)
        primary.grouped, primary.severity, primary.deadline = folded.grouped, folded.severity.value, folded.deadline
        session.add(primary)
        # Grouped, not paged again; but a graver alert about the same person rings again.
        members = await repository.members(session, primary)
        self._tell_watchers(primary, notices, members=members, kind="alert" if folded.rings_again else "update")

    # --- time passing -------------------------------------------------------------------------------------

    async def run_due(self) -> None:
        """Escalate every alert whose level ran out of time (and, once the grace after a start is over, every
        alert whose level has no one connected); page whoever came on call for what is open at their level."""
        now = self.clock.now()
        grace = self._grace(now)
        everything = self._presence_due(now, grace=grace)
        notices = Notices()
        async with unit_of_work(self.sessions) as session:
            rows = await repository.paging(session, agencies=list(self.served), due_by=None if everything else now)
            for agency, theirs in _by_agency(rows).items():
                steps = next_steps(
                    [self._alert(row) for row in theirs],
                    rota=self.served[agency].rota,
                    connected=self.live.connected(agency),
                    now=now,
                    grace=grace,
                )
                await self._apply(session, {row.alert_id: row for row in theirs}, steps, now=now, notices=notices)
        if grace is Grace.ENDING:
            self._grace_over = True
        self._after(notices)

    def _presence_due(self, now: datetime, *, grace: Grace) -> bool:
        # Who is on call and connected changes when a worker joins or a shift turns: only then is every open
        # alert looked at; otherwise only those whose time ran out (hundreds may be open, paged to hundreds).
        due = self._joined or grace is Grace.ENDING or now >= self._presence_at
        if due:
            self._joined, self._presence_at = False, now + PRESENCE_RECHECK
        return due

    def _grace(self, now: datetime) -> Grace:
        if self._grace_over:
            return Grace.OVER
        if now < self.started_at + timedelta(seconds=self.config.reconnect_grace_seconds):
            return Grace.RECONNECTING
        return Grace.ENDING

    async def next_deadline(self) -> datetime:
        wakeup = self.clock.now() + RECHECK
        if not self._grace_over:
            wakeup = min(wakeup, self.started_at + timedelta(seconds=self.config.reconnect_grace_seconds))
        async with self.sessions() as session:
            first = await repository.first_deadline(session, agencies=list(self.served))
        return min(wakeup, first) if first is not None else wakeup

    async def run(self) -> None:
        """The escalation timers, for as long as the service runs: a failed turn (the database busy or
        away) is logged and tried again shortly, never the end of escalation."""
        while True:
            self._wake.clear()
            try:
                await self.run_due()
                wakeup = await self.next_deadline()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("escalation turn failed, trying again", extra={"error": type(exc).__name__})
                wakeup = self.clock.now() + timedelta(seconds=1)
            await self.clock.wait(wakeup, self._wake)

    # --- an acknowledgement -------------------------------------------------------------------------------

    async def acknowledge(self, worker: Worker, alert_id: str) -> c.AlertView:
        """`worker` takes the alert (and every alert grouped under it) in hand."""
        notices = Notices()
        async with unit_of_work(self.sessions) as session:
            row = await self._alert_for(session, worker, alert_id)
            alert = self._alert(row)
            level = acknowledgement_level(alert, worker=worker.id, levels=self.levels_of(worker))
            if level is not None:  # None: the same tap twice
                await self._acknowledged(session, row, alert, by=worker, level=level, notices=notices)
            # With every alert grouped under it: the worker sees what they took in hand, all of it.
            view = self._view(row, await repository.members(session, row))
        self._after(notices)
        return view

    async def _acknowledged(
        self, session: AsyncSession, row: OncallAlert, alert: Alert, *, by: Worker, level: int, notices: Notices
    ) -> None:
        now = self.clock.now()
        # Those who saw it are told it is taken in hand; no one else hears of it.
        watchers = [w for w in self.live.connected(row.agency_id) if w == by.id or self._sees(alert, w)]
        for member in [row, *await repository.members(session, row)]:
            member.state, member.deadline = AlertState.ACKNOWLEDGED, None
            member.acknowledged_at, member.acknowledged_by, member.acknowledged_level = now, by.id, level
            session.add(member)
            await self._emit(
                session, member, AlertAcknowledged(alert_id=member.alert_id, acknowledged_at=now, level=level)
            )
            ALERT_ACK_SECONDS.labels(member.severity).observe((now - member.received_at).total_seconds())
        await self._report(session, row, now)
        notices.events = True
        for by_you in (True, False):
            told = [w for w in watchers if (w == by.id) is by_you]
            message = c.Acknowledged(alert_id=row.alert_id, acknowledged_at=now, level=level, by_you=by_you)
            notices.tell(row.agency_id, told, message.message())

    async def _alert_for(self, session: AsyncSession, worker: Worker, alert_id: str) -> OncallAlert:
        """The alert (the first of its group) `worker` may acknowledge; NotFound for any other, so a worker
        cannot learn of alerts they do not see."""
        found = await repository.alert(session, agency=worker.agency, alert_id=alert_id)
        if found is not None and found.group_of is not None:
            found = await repository.alert(session, agency=worker.agency, alert_id=found.group_of)
        if found is None:
            raise NotFound(NOT_YOURS)
        if found.state is AlertState.ACKNOWLEDGED:
            return found
        if not visible(self._alert(found), agency=worker.agency, worker=worker.id, levels=self.levels_of(worker)):
            raise NotFound(NOT_YOURS)
        return found

    # --- applying the rule's steps ------------------------------------------------------------------------

    async def _apply(
        self,
        session: AsyncSession,
        rows: Mapping[str, OncallAlert],
        steps: Sequence[Step],
        *,
        now: datetime,
        notices: Notices,
    ) -> None:
        for step in steps:
            row = rows[step.alert_id]
            match step:
                case PageWorkers():
                    await self._page(session, row, step, now=now, notices=notices)
                case Escalate(level=level):
                    await self._escalated(session, row, level, now=now, notices=notices, exhausted=False)
                case Exhaust():
                    await self._exhaust(session, row, step, now=now, notices=notices)

    async def _page(
        self, session: AsyncSession, row: OncallAlert, step: PageWorkers, *, now: datetime, notices: Notices
    ) -> None:
        row.level, row.level_started_at, row.deadline = step.level, step.since, step.deadline
        session.add(row)
        view = self._view(row, await repository.members(session, row))  # the same for every worker
        if step.workers:
            fresh = step.workers
            repository.add_paging(
                session, agency=row.agency_id, alert_id=row.alert_id, level=step.level, workers=fresh, at=now
            )
            notices.pages.append((row.agency_id, row.alert_id, fresh))
            notices.tell(row.agency_id, fresh, c.AlertMessage(type="alert", alert=view).message())
            ALERT_PAGES.labels(row.agency_id, str(step.level)).inc(len(fresh))
        already = self._paged.get((row.agency_id, row.alert_id), frozenset()) & self.live.connected(row.agency_id)
        if already:
            notices.tell(row.agency_id, already, c.AlertMessage(type="update", alert=view).message())

    async def _escalated(
        self, session: AsyncSession, row: OncallAlert, level: int, *, now: datetime, notices: Notices, exhausted: bool
    ) -> None:
        """The sender of the alert, and of every alert grouped under it, is told it passed to `level`."""
        ALERT_ESCALATIONS.labels(row.agency_id, "exhausted" if exhausted else "escalated").inc()
        for member in [row, *await repository.members(session, row)]:
            passed = AlertEscalated(alert_id=member.alert_id, escalated_at=now, level=level, exhausted=exhausted)
            await self._emit(session, member, passed)
        notices.events = True

    async def _exhaust(
        self, session: AsyncSession, row: OncallAlert, step: Exhaust, *, now: datetime, notices: Notices
    ) -> None:
        row.level, row.state, row.deadline = step.level, AlertState.UNACKNOWLEDGED, None
        session.add(row)
        await self._escalated(session, row, step.level, now=now, notices=notices, exhausted=True)
        self._call_fallback(session, row, now=now, notices=notices)
        await self._report(session, row, now)
        log.warning(
            "alert unacknowledged at every level",
            extra={"agency": row.agency_id, "alert": row.alert_id, "levels": row.level},
        )
        # Still acknowledgeable: those who see it keep seeing every alert grouped under it.
        self._tell_watchers(row, notices, members=await repository.members(session, row))

    def _call_fallback(self, session: AsyncSession, row: OncallAlert, *, now: datetime, notices: Notices) -> None:
        if self.served[row.agency_id].rota.policy.fallback_url is None:
            return
        body = orjson.dumps(views.fallback_call(row, exhausted_at=now).message())
        repository.add_fallback_call(
            session, agency=row.agency_id, alert_id=row.alert_id, body=body, at=self.webhook_clock.now()
        )
        notices.fallbacks = True

    async def _report(self, session: AsyncSession, row: OncallAlert, now: datetime) -> None:
        """For operators, through the outbox: an alert acknowledged, or unacknowledged at every level."""
        report = OncallReport(
            agency=row.agency_id,
            alert_id=row.alert_id,
            severity=row.severity,
            state=row.state.value,
            levels_paged=row.level,
            received_at=row.received_at,
            at=now,
        )
        await enqueue_record(
            session,
            event_id=row.alert_id,
            topic=self.topics.oncall,
            key=row.alert_id.encode(),
            value=report.model_dump_json().encode(),
            headers=[(SOURCE_HEADER, DISPATCHER_SOURCE.encode())],
        )

    async def _emit(self, session: AsyncSession, row: OncallAlert, payload: EventPayload) -> None:
        """An event back to the alert's sender, sealed to the gateway (the relay signs it as the served agency)."""
        trust = self.served[row.agency_id].trust
        await trust.knowing(GATEWAY)
        sealed = trust.sealed(
            payload,
            subject_ref=row.subject_ref,
            role=Role(row.subject_role),
            basis=LegalBasis.CONSENT,
            purpose=Purpose.SAFETY_PLANNING,
            at=self.clock.now(),
            recipients=(row.source_agency,),
        )
        await enqueue(session, sealed, topic=self.topics.submitted, signer=trust)

    # --- telling workers ----------------------------------------------------------------------------------

    def _sees(self, alert: Alert, worker: str) -> bool:
        levels = self.served[alert.agency].rota.levels_of(worker, self.clock.now())
        return visible(alert, agency=alert.agency, worker=worker, levels=levels)

    def _tell_watchers(
        self,
        row: OncallAlert,
        notices: Notices,
        *,
        members: list[OncallAlert] | None = None,
        kind: Literal["alert", "update"] = "update",
    ) -> None:
        """Every connected worker who sees the alert is sent it as it is now."""
        message = c.AlertMessage(type=kind, alert=self._view(row, members)).message()
        alert = self._alert(row)
        notices.tell(row.agency_id, [w for w in self.live.connected(row.agency_id) if self._sees(alert, w)], message)

    def _after(self, notices: Notices) -> None:
        """Once committed: who was paged is remembered, workers are told, the outbox and webhooks woken."""
        for agency, alert_id, workers in notices.pages:
            self._paged[(agency, alert_id)] = self._paged.get((agency, alert_id), frozenset()) | workers
        self.live.tell(notices.messages)
        if notices.events and self.relay is not None:
            self.relay.notify()
        if notices.fallbacks and self.on_fallback is not None:
            self.on_fallback()

    # --- rows as the rules and the workers see them -------------------------------------------------------

    def _alert(self, row: OncallAlert) -> Alert:
        return views.alert_of(row, paged=self._paged.get((row.agency_id, row.alert_id), frozenset()))

    def _view(self, row: OncallAlert, members: list[OncallAlert] | None = None) -> c.AlertView:
        return views.view_of(row, rota=self.served[row.agency_id].rota, network=self.network, members=members)


def _stored(arrival: Arrival, *, now: datetime) -> OncallAlert:
    envelope, payload = arrival.envelope, arrival.payload
    return OncallAlert(
        agency_id=arrival.agency,
        alert_id=envelope.id,
        source_agency=envelope.agency_id,
        subject_ref=envelope.subject,
        subject_role=envelope.subjectrole.value,
        severity=payload.severity.value,
        kind=payload.kind.value,
        data=payload.model_dump(mode="json", exclude_none=True, exclude={"severity", "kind"}),
        raised_at=envelope.time,
        received_at=now,
        state=AlertState.OPEN,
        level_started_at=now,
    )


def _by_agency(rows: Sequence[OncallAlert]) -> dict[str, list[OncallAlert]]:
    found: dict[str, list[OncallAlert]] = defaultdict(list)
    for row in rows:
        found[row.agency_id].append(row)
    return found


async def register_fallbacks(
    sessions: async_sessionmaker[AsyncSession], served: Mapping[str, Served], *, secret: str, clock: Clock
) -> None:
    """One webhook row per agency with a fallback URL, so its calls are signed, retried and traced; the row of
    an agency whose fallback was removed from the network file is switched off."""
    async with unit_of_work(sessions) as session:
        for agency_id, s in served.items():
            url = s.rota.policy.fallback_url
            hook = await repository.fallback_webhook(session, agency=agency_id)
            if url is None:
                if hook is not None:
                    hook.active = False
                    session.add(hook)
                continue
            if hook is None:
                hook = Webhook(
                    id=repository.fallback_webhook_id(agency_id), url=str(url), secret=secret, created_at=clock.now()
                )
            hook.url, hook.secret, hook.active = str(url), secret, True
            session.add(hook)


def retention(sessions: async_sessionmaker[AsyncSession], network: Network) -> Purge:
    """The dispatcher's purge: `purge(now)` removes what the network file's `[retention]` says is past its time."""
    steps = {Stored.ACKNOWLEDGED_ALERTS: (repository.purge_acknowledged_alerts, repository.purge_orphan_pages)}
    return Purge(
        service="dispatcher",
        sessions=sessions,
        retention=network.retention,
        steps={**steps, **OUTBOX, **WEBHOOKS, **SIGN_IN},
    )
