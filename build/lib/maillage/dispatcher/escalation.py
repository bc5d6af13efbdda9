"""The on-call engine: an alert is paged level by level until a worker acknowledges it.

Every change (a new alert, a level passed, an acknowledgement) is one database transaction that also
writes, through the outbox, the `alert.escalated` / `alert.acknowledged` events for the sender; the
workers are told once it has committed. Timers are deadlines in the database, read against an
injected clock, so a restart loses none and a test advances time instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.clock import Clock, SystemClock
from maillage.core.config.network import AgencyConfig, Network
from maillage.core.crypto.keys import KeyUse
from maillage.core.crypto.trust import Trust
from maillage.core.messaging.envelope import Envelope
from maillage.core.messaging.topics import Topics
from maillage.core.observability.metrics import ALERT_ACK_SECONDS, ALERT_ESCALATIONS, ALERT_PAGES, ALERTS_RECEIVED
from maillage.core.outbox.enqueue import enqueue, enqueue_record
from maillage.core.outbox.relay import OutboxRelay
from maillage.core.storage.db import unit_of_work
from maillage.core.webhooks.models import WebhookDelivery
from maillage.dispatcher.live import Frame, Live, Message, Worker
from maillage.dispatcher.models import AlertState, OncallAlert, Page
from maillage.domain.errors import Conflict, NotFound
from maillage.domain.events import AlertAcknowledged, AlertEscalated, AlertRaised, EventPayload
from maillage.domain.rota import Rota
from maillage.domain.status import DISPATCHER_SOURCE, SOURCE_HEADER, OncallReport
from maillage.domain.vocabulary import LegalBasis, Purpose, Role, Severity

# The rota changes hands at shift boundaries and nobody is notified of that: look again at least this often.
RECHECK = timedelta(seconds=5)
# Shifts turn on the minute at most: whoever came on call is paged for what is open within this delay.
PRESENCE_RECHECK = timedelta(seconds=30)

log = logging.getLogger(__name__)

SEVERITY_RANK = {Severity.INFO: 0, Severity.HIGH: 1, Severity.IMMINENT: 2}
SHOWN = (AlertState.OPEN, AlertState.UNACKNOWLEDGED)


def fallback_webhook_id(agency_id: str) -> str:
    return f"fallback:{agency_id}"


@dataclass(frozen=True)
class Served:
    """An agency whose alerts this dispatcher serves: its rota, and its keys (it speaks for the agency)."""

    agency: AgencyConfig
    rota: Rota
    trust: Trust


@dataclass
class Notices:
    """What to tell, once the transaction that decided it has committed."""

    messages: list[tuple[str, str, Message]] = field(default_factory=list)  # (agency, worker, message)
    pages: list[tuple[str, str, str]] = field(default_factory=list)  # (agency, alert id, worker)
    events: bool = False
    fallbacks: bool = False

    def tell(self, agency: str, worker: str, message: Message) -> None:
        self.messages.append((agency, worker, message))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


class Dispatcher:
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
        on_fallback: Any = None,
    ) -> None:
        self.network = network
        self.config = network.dispatcher
        self.topics = topics
        self.sessions = sessions
        self.served = served
        self.live = live
        self.relay = relay
        self.clock: Clock = clock or SystemClock()
        self.on_fallback = on_fallback
        self.started_at = self.clock.now()
        self._wake = asyncio.Event()
        self._paged: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._grace_over = self.config.reconnect_grace_seconds == 0
        self._joined = False
        self._presence_at = self.started_at

    async def start(self) -> None:
        async with self.sessions() as session:
            for page in (await session.exec(select(Page))).all():
                self._paged[(page.agency_id, page.alert_id)].add(page.worker)

    def wake(self) -> None:
        """Something changed (an alert arrived, time moved): look at the timers again."""
        self._wake.set()

    def keys_changed(self) -> None:
        """A key was added or retired: streams opened with a retired token key are closed now."""
        trust = next(iter(self.served.values())).trust if self.served else None
        if trust is not None:
            revoked = self.live.revoke(lambda kid: trust.public.get(kid, use=KeyUse.TOKENS) is not None)
            if revoked:
                log.warning("streams closed: their token key was retired", extra={"streams": revoked})

    def worker_joined(self) -> None:
        """A worker connected: page them for what is open at their level, if they were not already."""
        self._joined = True
        self._wake.set()

    # --- what a worker sees ---------------------------------------------------------------------

    def levels_of(self, worker: Worker) -> tuple[int, ...]:
        return self.served[worker.agency].rota.levels_of(worker.id, self.clock.now())

    def visible(self, alert: OncallAlert, worker: Worker, levels: tuple[int, ...]) -> bool:
        """An open alert is for a worker of its agency on call at its level or below, or already paged for it."""
        return (
            alert.agency_id == worker.agency
            and alert.state in SHOWN
            and (
                (bool(levels) and min(levels) <= alert.level)
                or worker.id in self._paged.get((alert.agency_id, alert.alert_id), ())
            )
        )

    def view(self, alert: OncallAlert, members: list[OncallAlert] | None = None) -> dict[str, Any]:
        """What a worker sees of an alert, with every alert grouped under it (each one acknowledged with it)."""
        served = self.served[alert.agency_id]
        source = self.network.by_id.get(alert.source_agency)
        level = min(alert.level, served.rota.depth)  # a level removed from the rota since: its last one
        return {
            "alert_id": alert.alert_id,
            "agency": alert.agency_id,
            "source_agency": alert.source_agency,
            "source_name": source.name if source else alert.source_agency,
            "severity": alert.severity,
            "kind": alert.kind,
            "state": alert.state.value,
            "level": level,
            "level_name": served.rota.level_name(level),
            "levels": served.rota.depth,
            "raised_at": _iso(alert.raised_at),
            "received_at": _iso(alert.received_at),
            "deadline": _iso(alert.deadline),
            "grouped": alert.grouped,
            "subject_ref": alert.subject_ref,
            "subject_role": alert.subject_role,
            "data": alert.data,
            "acknowledged_at": _iso(alert.acknowledged_at),
            "acknowledged_by": alert.acknowledged_by,
            "group": [
                {
                    "alert_id": m.alert_id,
                    "severity": m.severity,
                    "kind": m.kind,
                    "source_agency": m.source_agency,
                    "source_name": self._name(m.source_agency),
                    "raised_at": _iso(m.raised_at),
                    "received_at": _iso(m.received_at),
                    "data": m.data,
                }
                for m in members or ()
            ],
        }

    def _name(self, agency_id: str) -> str:
        agency = self.network.by_id.get(agency_id)
        return agency.name if agency else agency_id

    async def open_for(self, worker: Worker) -> list[dict[str, Any]]:
        """Every alert still open for this worker, the most severe and oldest first."""
        levels = self.levels_of(worker)
        async with self.sessions() as session:
            rows = (
                await session.exec(
                    select(OncallAlert)
                    .where(OncallAlert.agency_id == worker.agency, col(OncallAlert.state).in_(SHOWN))
                    .order_by(col(OncallAlert.received_at))
                )
            ).all()
        shown = [a for a in rows if self.visible(a, worker, levels)]
        shown.sort(key=lambda a: -SEVERITY_RANK[Severity(a.severity)])
        grouped = [a.alert_id for a in shown if a.grouped > 1]
        members: dict[str, list[OncallAlert]] = defaultdict(list)
        if grouped:
            async with self.sessions() as session:
                for m in (
                    await session.exec(
                        select(OncallAlert).where(
                            OncallAlert.agency_id == worker.agency, col(OncallAlert.group_of).in_(grouped)
                        )
                    )
                ).all():
                    members[m.group_of or ""].append(m)
        return [self.view(a, members.get(a.alert_id)) for a in shown]

    async def unacknowledged(self, *, after: int, limit: int) -> tuple[list[dict[str, Any]], list[int]]:
        """For operators: alerts every level let pass, without any personal data; and their positions."""
        async with self.sessions() as session:
            rows = (
                await session.exec(
                    select(OncallAlert)
                    .where(OncallAlert.state == AlertState.UNACKNOWLEDGED, col(OncallAlert.id) > after)
                    .order_by(col(OncallAlert.id))
                    .limit(limit)
                )
            ).all()
        return [
            {
                "alert_id": a.alert_id,
                "agency": a.agency_id,
                "source_agency": a.source_agency,
                "severity": a.severity,
                "kind": a.kind,
                "levels_paged": a.level,
                "grouped": a.grouped,
                "received_at": _iso(a.received_at),
            }
            for a in rows
        ], [a.id or 0 for a in rows]

    # --- alerts arriving ------------------------------------------------------------------------

    async def receive(
        self, session: AsyncSession, agency_id: str, envelope: Envelope, payload: AlertRaised, notices: Notices
    ) -> None:
        """Store a delivered alert (once per agency and id) and page its first level, or group it."""
        known = await session.exec(
            select(OncallAlert.id).where(OncallAlert.agency_id == agency_id, OncallAlert.alert_id == envelope.id)
        )
        if known.first() is not None:
            return  # a redelivered record
        now = self.clock.now()
        alert = OncallAlert(
            agency_id=agency_id,
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
        ALERTS_RECEIVED.labels(agency_id, alert.severity).inc()
        primary = await self._group_for(session, alert, now)
        if primary is not None:
            alert.state, alert.group_of, alert.deadline = AlertState.GROUPED, primary.alert_id, None
            session.add(alert)
            graver = self._join(primary, alert)
            session.add(primary)
            await session.flush()
            # Grouped, not paged again; but a graver alert about the same person rings again.
            self._tell_update(
                primary, notices, members=await self._members(session, primary), kind="alert" if graver else "update"
            )
            return
        session.add(alert)
        await self._page_from(session, alert, 1, now, notices)

    async def _group_for(self, session: AsyncSession, alert: OncallAlert, now: datetime) -> OncallAlert | None:
        window = timedelta(seconds=self.config.group_window_seconds)
        found = await session.exec(
            select(OncallAlert)
            .where(
                OncallAlert.agency_id == alert.agency_id,
                OncallAlert.subject_ref == alert.subject_ref,
                # Not into one every level already let pass: a new alert pages afresh.
                OncallAlert.state == AlertState.OPEN,
                col(OncallAlert.group_of).is_(None),
                OncallAlert.received_at >= now - window,
            )
            .order_by(col(OncallAlert.received_at))
            .limit(1)
        )
        return found.first()

    def _join(self, primary: OncallAlert, member: OncallAlert) -> bool:
        """Fold `member` into `primary`; true when it made the group graver."""
        primary.grouped += 1
        if SEVERITY_RANK[Severity(member.severity)] <= SEVERITY_RANK[Severity(primary.severity)]:
            return False
        primary.severity = member.severity
        if primary.deadline is not None:
            # A more severe alert about the same person: the current level has less time.
            primary.deadline = min(primary.deadline, primary.level_started_at + self._delay(primary))
        return True

    def _delay(self, alert: OncallAlert) -> timedelta:
        policy = self.served[alert.agency_id].rota.policy
        return timedelta(seconds=policy.escalate_after[Severity(alert.severity)])

    # --- levels ---------------------------------------------------------------------------------

    def _in_grace(self, now: datetime) -> bool:
        return not self._grace_over and now < self.started_at + timedelta(seconds=self.config.reconnect_grace_seconds)

    async def _page_from(
        self, session: AsyncSession, alert: OncallAlert, level: int, now: datetime, notices: Notices
    ) -> None:
        """Page `level`; a level with no one connected passes at once to the next; past the last, exhausted."""
        served = self.served[alert.agency_id]
        while level <= served.rota.depth:
            alert.level, alert.level_started_at = level, now
            alert.deadline = now + self._delay(alert)
            session.add(alert)
            targets = served.rota.on_call(level, now) & self.live.connected(alert.agency_id)
            if targets or self._in_grace(now):
                # Within the grace after a restart, workers are reconnecting: the deadline decides.
                await self._page(session, alert, targets, now, notices)
                return
            if level == served.rota.depth:
                break
            level += 1
            await self._escalated(session, alert, level, now, notices, exhausted=False)
        await self._exhaust(session, alert, now, notices)

    async def _page(
        self, session: AsyncSession, alert: OncallAlert, targets: frozenset[str], now: datetime, notices: Notices
    ) -> None:
        already = self._paged.get((alert.agency_id, alert.alert_id), set())
        fresh = sorted(targets - already)
        view = self.view(alert, await self._members(session, alert))  # the same for every worker
        if fresh:
            # One multi-row INSERT, not one ORM object (and one INSERT ... RETURNING) per worker.
            await session.exec(
                insert(Page.__table__),
                params=[  # type: ignore[attr-defined]
                    {
                        "agency_id": alert.agency_id,
                        "alert_id": alert.alert_id,
                        "level": alert.level,
                        "worker": worker,
                        "paged_at": now,
                    }
                    for worker in fresh
                ],
            )
            paged = {"type": "alert", "alert": view}
            for worker in fresh:
                notices.pages.append((alert.agency_id, alert.alert_id, worker))
                notices.tell(alert.agency_id, worker, paged)
            ALERT_PAGES.labels(alert.agency_id, str(alert.level)).inc(len(fresh))
        for worker in already & self.live.connected(alert.agency_id):
            notices.tell(alert.agency_id, worker, {"type": "update", "alert": view})

    async def _escalated(
        self, session: AsyncSession, alert: OncallAlert, level: int, now: datetime, notices: Notices, *, exhausted: bool
    ) -> None:
        ALERT_ESCALATIONS.labels(alert.agency_id, "exhausted" if exhausted else "escalated").inc()
        for member in [alert, *await self._members(session, alert)]:
            self._emit(
                session,
                member,
                AlertEscalated(alert_id=member.alert_id, escalated_at=now, level=level, exhausted=exhausted),
            )
        notices.events = True

    async def _exhaust(self, session: AsyncSession, alert: OncallAlert, now: datetime, notices: Notices) -> None:
        alert.state, alert.deadline = AlertState.UNACKNOWLEDGED, None
        session.add(alert)
        await self._escalated(session, alert, alert.level, now, notices, exhausted=True)
        policy = self.served[alert.agency_id].rota.policy
        if policy.fallback_url is not None:
            body = {
                "type": "maillage.oncall.unacknowledged",
                "agency": alert.agency_id,
                "alert_id": alert.alert_id,
                "severity": alert.severity,
                "kind": alert.kind,
                "levels_paged": alert.level,
                "grouped": alert.grouped,
                "received_at": _iso(alert.received_at),
                "exhausted_at": _iso(now),
            }
            # Webhook attempts run on the real clock, whatever clock paces the escalation.
            real_now = SystemClock().now()
            session.add(
                WebhookDelivery(
                    webhook_id=fallback_webhook_id(alert.agency_id),
                    event_id=alert.alert_id,
                    body=orjson.dumps(body),
                    next_attempt_at=real_now,
                    created_at=real_now,
                )
            )
            notices.fallbacks = True
        self._report(session, alert, now)
        log.warning(
            "alert unacknowledged at every level",
            extra={"agency": alert.agency_id, "alert": alert.alert_id, "levels": alert.level},
        )
        self._tell_update(alert, notices)

    async def _members(self, session: AsyncSession, alert: OncallAlert) -> list[OncallAlert]:
        if alert.grouped == 1:
            return []
        rows = await session.exec(
            select(OncallAlert).where(OncallAlert.agency_id == alert.agency_id, OncallAlert.group_of == alert.alert_id)
        )
        return list(rows.all())

    def _tell_update(
        self, alert: OncallAlert, notices: Notices, *, members: list[OncallAlert] | None = None, kind: str = "update"
    ) -> None:
        message = {"type": kind, "alert": self.view(alert, members)}
        for worker in self.live.connected(alert.agency_id):
            who = Worker(alert.agency_id, worker)
            if self.visible(alert, who, self.levels_of(who)):
                notices.tell(alert.agency_id, worker, message)

    def _report(self, session: AsyncSession, alert: OncallAlert, now: datetime) -> None:
        """For operators, through the outbox: an alert acknowledged, or unacknowledged at every level."""
        report = OncallReport(
            agency=alert.agency_id,
            alert_id=alert.alert_id,
            severity=alert.severity,
            state=alert.state.value,
            levels_paged=alert.level,
            received_at=alert.received_at,
            at=now,
        )
        enqueue_record(
            session,
            event_id=alert.alert_id,
            topic=self.topics.oncall,
            key=alert.alert_id.encode(),
            value=report.model_dump_json().encode(),
            headers=[(SOURCE_HEADER, DISPATCHER_SOURCE.encode())],
        )

    def _emit(self, session: AsyncSession, alert: OncallAlert, payload: EventPayload) -> None:
        """An event back to the alert's sender, signed by the served agency and sealed to the gateway."""
        sealed = self.served[alert.agency_id].trust.sealed_event(
            payload,
            subject_ref=alert.subject_ref,
            role=Role(alert.subject_role),
            basis=LegalBasis.CONSENT,
            purpose=Purpose.SAFETY_PLANNING,
            at=self.clock.now(),
            recipients=(alert.source_agency,),
        )
        enqueue(session, sealed, topic=self.topics.submitted)

    # --- time passing ---------------------------------------------------------------------------

    async def run_due(self) -> None:
        """Escalate every alert whose level ran out of time (and, once the grace after a start is over,
        every alert whose level has no one connected)."""
        now = self.clock.now()
        notices = Notices()
        grace_ending = not self._grace_over and not self._in_grace(now)
        # Who is on call and connected changes when a worker joins or a shift turns: only then is every
        # open alert looked at; otherwise only those whose time ran out.
        presence = self._joined or grace_ending or now >= self._presence_at
        if presence:
            self._joined, self._presence_at = False, now + PRESENCE_RECHECK
        async with unit_of_work(self.sessions) as session:
            query = select(OncallAlert).where(
                OncallAlert.state == AlertState.OPEN,
                col(OncallAlert.group_of).is_(None),
                col(OncallAlert.agency_id).in_(list(self.served)),
            )
            if not presence:
                query = query.where(col(OncallAlert.deadline) <= now)
            rows = (await session.exec(query.order_by(col(OncallAlert.received_at)))).all()
            on_call: dict[tuple[str, int], frozenset[str]] = {}
            for alert in rows:
                rota = self.served[alert.agency_id].rota
                alert.level = min(alert.level, rota.depth)  # a level removed from the rota since
                key = (alert.agency_id, alert.level)
                if key not in on_call:
                    on_call[key] = rota.on_call(alert.level, now) & self.live.connected(alert.agency_id)
                present = on_call[key]
                deserted = grace_ending and not present
                if not (deserted or (alert.deadline is not None and alert.deadline <= now)):
                    # Still this level's time: whoever came on call at it since (a new shift, a worker
                    # back online) is paged now, once.
                    if present - self._paged.get((alert.agency_id, alert.alert_id), set()):
                        await self._page(session, alert, present, now, notices)
                    continue
                if alert.level < rota.depth:
                    await self._escalated(session, alert, alert.level + 1, now, notices, exhausted=False)
                    await self._page_from(session, alert, alert.level + 1, now, notices)
                else:
                    await self._exhaust(session, alert, now, notices)
        if grace_ending:
            self._grace_over = True
        self._after(notices)

    async def next_deadline(self) -> datetime:
        now = self.clock.now()
        wakeup = now + RECHECK
        if not self._grace_over:
            wakeup = min(wakeup, self.started_at + timedelta(seconds=self.config.reconnect_grace_seconds))
        async with self.sessions() as session:
            first = (
                await session.exec(
                    select(OncallAlert.deadline)
                    .where(
                        OncallAlert.state == AlertState.OPEN,
                        col(OncallAlert.agency_id).in_(list(self.served)),
                        col(OncallAlert.deadline).is_not(None),
                    )
                    .order_by(col(OncallAlert.deadline))
                    .limit(1)
                )
            ).first()
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

    # --- acknowledgement ------------------------------------------------------------------------

    async def acknowledge(self, worker: Worker, alert_id: str) -> dict[str, Any]:
        notices = Notices()
        async with unit_of_work(self.sessions) as session:
            alert = await self._alert_for(session, worker, alert_id)
            if alert.state is AlertState.ACKNOWLEDGED:
                if alert.acknowledged_by == worker.id:
                    return self.view(alert)  # the same tap twice
                raise Conflict("Someone else already acknowledged this alert.")
            now = self.clock.now()
            levels = self.levels_of(worker)
            level = min(levels) if levels else alert.level
            # Those who saw it are told it is taken in hand; no one else hears of it.
            watchers = [
                other
                for other in self.live.connected(alert.agency_id)
                if other == worker.id
                or self.visible(alert, Worker(alert.agency_id, other), self.levels_of(Worker(alert.agency_id, other)))
            ]
            for member in [alert, *await self._members(session, alert)]:
                member.state, member.deadline = AlertState.ACKNOWLEDGED, None
                member.acknowledged_at, member.acknowledged_by, member.acknowledged_level = now, worker.id, level
                session.add(member)
                self._emit(
                    session, member, AlertAcknowledged(alert_id=member.alert_id, acknowledged_at=now, level=level)
                )
                ALERT_ACK_SECONDS.labels(member.severity).observe((now - member.received_at).total_seconds())
            self._report(session, alert, now)
            notices.events = True
            for other in watchers:
                notices.tell(
                    alert.agency_id,
                    other,
                    {
                        "type": "acknowledged",
                        "alert_id": alert.alert_id,
                        "acknowledged_at": _iso(now),
                        "level": level,
                        "by_you": other == worker.id,
                    },
                )
            view = self.view(alert)
        self._after(notices)
        return view

    async def _alert_for(self, session: AsyncSession, worker: Worker, alert_id: str) -> OncallAlert:
        found = (
            await session.exec(
                select(OncallAlert).where(OncallAlert.agency_id == worker.agency, OncallAlert.alert_id == alert_id)
            )
        ).first()
        if found is not None and found.group_of is not None:
            found = (
                await session.exec(
                    select(OncallAlert).where(
                        OncallAlert.agency_id == worker.agency, OncallAlert.alert_id == found.group_of
                    )
                )
            ).first()
        if found is None:
            raise NotFound("There is no alert with this id for you.")
        if found.state is AlertState.ACKNOWLEDGED:
            return found
        if not self.visible(found, worker, self.levels_of(worker)):
            raise NotFound("There is no alert with this id for you.")
        return found

    # --- after a commit -------------------------------------------------------------------------

    def _after(self, notices: Notices) -> None:
        for agency, alert_id, worker in notices.pages:
            self._paged[(agency, alert_id)].add(worker)
        frames: dict[int, Frame] = {}  # one serialisation per message, however many workers it goes to
        for agency, worker, message in notices.messages:
            frame = frames.get(id(message))
            if frame is None:
                frame = frames[id(message)] = Frame.of(message)
            self.live.send(agency, worker, frame)
        if notices.events and self.relay is not None:
            self.relay.notify()
        if notices.fallbacks and self.on_fallback is not None:
            self.on_fallback()

    def committed(self, notices: Notices) -> None:
        """Called by the delivery handler once the transaction of `receive` has committed."""
        self._after(notices)
        self.wake()
