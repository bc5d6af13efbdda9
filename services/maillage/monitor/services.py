"""The monitor's use cases: what operators read and do, and what it keeps of the records it reads.

Nothing here carries a subject, a category's content or a record's value.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.clock import Clock, SystemClock, as_utc
from maillage.core.config.network import Network
from maillage.core.messaging.bus import ProducerSlot
from maillage.core.messaging.kafka_auth import KafkaAuth
from maillage.core.messaging.topics import Topics
from maillage.core.observability.metrics import ALERTS_UNACKNOWLEDGED, ERASURES_UNCONFIRMED, REVIEWS_PENDING
from maillage.core.storage.db import unit_of_work
from maillage.core.storage.retention import SIGN_IN, Purge
from maillage.core.web.paging import decode_cursor, next_cursor
from maillage.domain import statistics
from maillage.domain.errors import Conflict, InvalidRequest, NotFound
from maillage.domain.events import Holder, NoticeKind
from maillage.domain.notices import ACKNOWLEDGED
from maillage.domain.retention import Stored
from maillage.domain.status import OncallReport, StatusReport
from maillage.monitor import contracts as c
from maillage.monitor import repository
from maillage.monitor.lag import LagWatch
from maillage.monitor.models import DeadLetter, Decision, ErasureNotice, OncallOutcome, Rejection, Review
from maillage.monitor.replay import read_back

log = logging.getLogger(__name__)
OUTCOMES = ("delivered", "filtered", "denied")
MAX_BUCKETS = 1440

Fact = c.AuditLine | StatusReport | OncallReport | c.DeadLetterSeen
# A record the monitor cannot make sense of is counted, never fatal: it only watches, and one odd record must
# not hold back every other one.
NOT_UNDERSTOOD = (orjson.JSONDecodeError, ValidationError, KeyError, TypeError, ValueError)


ERASURES = frozenset({NoticeKind.SUBJECT_ERASED.value, NoticeKind.EVENTS_ERASED.value})


@dataclass
class MonitorContext:
    network: Network
    topics: Topics
    sessions: async_sessionmaker[AsyncSession]
    producer: ProducerSlot
    bootstrap: str
    lag: LagWatch
    auth: KafkaAuth | None = None
    clock: Clock = field(default_factory=SystemClock)


# --- reading ------------------------------------------------------------------------------------


async def overview(ctx: MonitorContext, *, minutes: int) -> c.Overview:
    since = ctx.clock.now() - timedelta(minutes=minutes)
    async with ctx.sessions() as session:
        outcomes = await repository.outcome_counts(session, since=since)
        dead = await repository.dead_letters_waiting(session)
        reviews = await repository.reviews_pending(session)
        unanswered = await repository.alerts_unacknowledged(session)
        rejected = await repository.rejections_since(session, since=since)
    return c.Overview(
        minutes=minutes,
        generated_at=ctx.clock.now(),
        decisions=c.DecisionCounts(**{o: outcomes.get(o, 0) for o in OUTCOMES}),
        rejected=rejected,
        dead_letters_waiting=dead,
        reviews_pending=reviews,
        alerts_unacknowledged=unanswered,
        max_lag=max((g.lag for g in ctx.lag.groups), default=0),
    )


async def flow(ctx: MonitorContext, *, minutes: int, bucket_seconds: int) -> c.Flow:
    buckets = -(-minutes * 60 // bucket_seconds)
    if buckets > MAX_BUCKETS:
        raise InvalidRequest("problem.validation.too-many-points", most=MAX_BUCKETS)
    start = ctx.clock.now() - timedelta(minutes=minutes)
    async with ctx.sessions() as session:
        rows = await repository.decided_since(session, since=start)
    counts: dict[str, list[Counter[str]]] = defaultdict(lambda: [Counter() for _ in range(buckets)])
    for recorded_at, sector, outcome in rows:
        index = min(buckets - 1, int((as_utc(recorded_at) - start).total_seconds() // bucket_seconds))
        counts[sector][index][outcome] += 1
    return c.Flow(
        bucket_seconds=bucket_seconds,
        times=[start + timedelta(seconds=i * bucket_seconds) for i in range(buckets)],
        series=[_series(sector, per) for sector, per in sorted(counts.items())],
    )


def _series(sector: str, per_bucket: list[Counter[str]]) -> c.SectorSeries:
    return c.SectorSeries(sector=sector, **{o: [bucket[o] for bucket in per_bucket] for o in OUTCOMES})


async def decisions(ctx: MonitorContext, *, minutes: int) -> c.Decisions:
    since = ctx.clock.now() - timedelta(minutes=minutes)
    async with ctx.sessions() as session:
        rows = await repository.decision_totals(session, since=since)
    items = [
        c.DecisionTotal(type=t, sector=s, outcome=o, legal_basis=b, count=n, categories_removed=r or 0)
        for t, s, o, b, n, r in rows
    ]
    return c.Decisions(minutes=minutes, items=items)


def lag(ctx: MonitorContext) -> c.Lag:
    prefix = ctx.topics.prefix
    groups = [
        c.GroupLagOut(
            group=g.group.removeprefix(prefix), topic=g.topic.removeprefix(prefix), lag=g.lag, partitions=g.partitions
        )
        for g in ctx.lag.groups
    ]
    return c.Lag(measured_at=ctx.lag.measured_at, groups=groups)


async def unacknowledged(ctx: MonitorContext, *, cursor: str | None, limit: int) -> c.UnansweredPage:
    async with ctx.sessions() as session:
        rows = await repository.unanswered_page(session, after=decode_cursor(cursor), limit=limit)
    return c.UnansweredPage(
        items=[_unanswered(a) for a in rows], next_cursor=next_cursor([a.id or 0 for a in rows], limit=limit)
    )


def _unanswered(alert: OncallOutcome) -> c.UnansweredAlert:
    return c.UnansweredAlert(
        agency=alert.agency,
        alert_id=alert.alert_id,
        severity=alert.severity,
        levels_paged=alert.levels_paged,
        received_at=alert.received_at,
        since=alert.updated_at,
    )


# --- dead letters -------------------------------------------------------------------------------


def replayable(ctx: MonitorContext, dead: DeadLetter) -> bool:
    # The monitor may write only where any agency may: the submitted topic. What an agency could not
    # read from its delivery topic is answered at the source (the gateway delivers it again).
    return dead.dlq_topic == ctx.topics.dlq and dead.topic == ctx.topics.submitted and dead.partition is not None


def _dead_letter_out(ctx: MonitorContext, dead: DeadLetter) -> c.DeadLetterOut:
    return c.DeadLetterOut(
        id=dead.id or 0,
        reason=dead.reason,
        detail=dead.detail,
        service=dead.service,
        topic=dead.topic.removeprefix(ctx.topics.prefix),
        event_id=dead.event_id,
        event_type=dead.event_type,
        source=dead.source,
        at=dead.at,
        replayed_at=dead.replayed_at,
        replays=dead.replays,
        replayable=replayable(ctx, dead),
    )


async def dead_letters(ctx: MonitorContext, *, limit: int, waiting: bool) -> c.DeadLetters:
    async with ctx.sessions() as session:
        rows = await repository.dead_letters(session, limit=limit, waiting=waiting)
    return c.DeadLetters(items=[_dead_letter_out(ctx, d) for d in rows])


async def replay(ctx: MonitorContext, dead_letter_id: int) -> c.DeadLetterOut:
    """Publish the record again, as first published, to the topic it came from."""
    async with ctx.sessions() as session:
        dead = await repository.dead_letter(session, dead_letter_id)
    if dead is None:
        raise NotFound("problem.not-found.dead-letter")
    if not replayable(ctx, dead):
        raise Conflict("problem.conflict.not-replayable", service=dead.service)
    key, value, headers = await read_back(dead, bootstrap=ctx.bootstrap, auth=ctx.auth)
    producer = await ctx.producer.get()
    try:
        await producer.send_and_wait(dead.topic, value, key=key, headers=headers)
    except KafkaError as exc:
        await ctx.producer.discard(error=exc)
        raise
    async with unit_of_work(ctx.sessions) as session:
        stored = await repository.dead_letter(session, dead_letter_id)
        assert stored is not None
        stored.replayed_at, stored.replays = ctx.clock.now(), stored.replays + 1
        session.add(stored)
    log.info("dead letter replayed", extra={"dead_letter": dead_letter_id, "reason": dead.reason})
    return _dead_letter_out(ctx, stored)


# --- reviews ------------------------------------------------------------------------------------


async def reviews(ctx: MonitorContext) -> c.ReviewCounts:
    """How many danger disclosures wait for their review at the raising agency, since when; how many were
    decided. Counts and ages only: the review itself, and its justification, are the agency's."""
    async with ctx.sessions() as session:
        counts = await repository.review_counts(session)
        oldest = await repository.oldest_pending_review(session)
    since = as_utc(oldest) if oldest else None
    return c.ReviewCounts(
        pending=counts.get("pending", 0),
        approved=counts.get("approved", 0),
        rejected=counts.get("rejected", 0),
        oldest_pending_since=since,
        oldest_pending_age_seconds=(ctx.clock.now() - since).total_seconds() if since else None,
    )


# --- figures for public policy ------------------------------------------------------------------

# An alert is acknowledged after it is decided: its decisions are looked for this far before the quarter.
ALERT_LEAD = timedelta(days=7)


async def stats(ctx: MonitorContext, *, quarter: str | None, pole: str | None, threshold: int | None) -> c.Stats:
    """The Pôles' figures for a quarter (the current one by default), every small count withheld."""
    least = ctx.network.monitor.stats_threshold
    if threshold is not None and threshold < least:
        raise InvalidRequest("problem.validation.threshold-lowered", least=least)
    now = ctx.clock.now()
    quarter = quarter or statistics.last_closed_quarter(now)
    try:
        start, end = statistics.quarter_bounds(quarter)
    except ValueError:
        raise InvalidRequest("problem.validation.quarter") from None
    if end > now:
        # Figures of a quarter still running change as events come in: two readings an hour apart would tell
        # one referral from the next, whatever the threshold. Only closed quarters are published.
        raise InvalidRequest("problem.validation.quarter-open")
    async with ctx.sessions() as session:
        rows = await repository.decided_between(session, start=start, end=end)
        acks = await repository.acknowledged_between(session, start=start, end=end)
        poles = await repository.alert_poles(session, event_type=statistics.ALERT, start=start - ALERT_LEAD, end=end)
    decided = [_decided(ctx.network, row, quarter=quarter) for row in rows]
    acknowledged = [_acknowledged(ctx.network, ack, poles, quarter=quarter) for ack in acks]
    found = statistics.figures(decided, acknowledged, threshold=threshold or least)
    return c.Stats(
        quarter=quarter,
        threshold=threshold or least,
        generated_at=ctx.clock.now(),
        poles=[_pole_stats(f) for f in found if pole is None or f.pole == pole],
    )


def _pole_of(network: Network, agency_id: str) -> str:
    """An agency's Pôle when it serves only one (records written before the gateway kept the Pôle)."""
    agency = network.by_id.get(agency_id)
    return agency.poles[0] if agency is not None and len(agency.poles) == 1 else statistics.UNKNOWN


def _sector_of(network: Network, agency_id: str) -> str:
    agency = network.by_id.get(agency_id)
    return agency.sector.value if agency is not None else statistics.UNKNOWN


def _decided(network: Network, row: Decision, *, quarter: str) -> statistics.Decided:
    return statistics.Decided(
        pole=row.pole or _pole_of(network, row.source),
        quarter=quarter,
        event_id=row.event_id,
        event_type=row.event_type,
        recipient=row.recipient,
        sender_sector=_sector_of(network, row.source),
        recipient_sector=row.sector,
        legal_basis=row.legal_basis,
        outcome=row.outcome,
        severity=row.severity,
        kind=row.kind,
        referral_decision=row.referral_decision,
        decline_reason=row.decline_reason,
        conference_purpose=row.conference_purpose,
    )


def _acknowledged(
    network: Network, ack: OncallOutcome, poles: dict[tuple[str, str], str | None], *, quarter: str
) -> statistics.Acknowledged:
    return statistics.Acknowledged(
        pole=poles.get((ack.alert_id, ack.agency)) or _pole_of(network, ack.agency),
        quarter=quarter,
        severity=ack.severity,
        seconds=ack.acknowledged_after_s or 0.0,
    )


def _pole_stats(f: statistics.Figures) -> c.PoleStats:
    return c.PoleStats(
        pole=f.pole,
        quarter=f.quarter,
        tables=[
            c.StatsTable(
                name=t.name,
                rows=list(t.rows),
                columns=list(t.columns),
                cells=[list(row) for row in t.cells],
                row_totals=list(t.row_totals),
                column_totals=list(t.column_totals),
                total=t.total,
            )
            for t in f.tables
        ],
        acknowledgement=[c.StatsTiming(**vars(timing)) for timing in f.acknowledgement],
    )


# --- gauges -------------------------------------------------------------------------------------


async def refresh_gauges(ctx: MonitorContext) -> None:
    """The figures operators alert on: reviews waiting for a second person, alerts no one answered."""
    async with ctx.sessions() as session:
        pending = await repository.reviews_pending(session)
        unanswered = await repository.alerts_unacknowledged(session)
        hours = timedelta(hours=ctx.network.monitor.erasure_confirm_hours)
        overdue = await repository.unconfirmed_erasure_count(session, issued_before=ctx.clock.now() - hours)
    ERASURES_UNCONFIRMED.set(overdue)
    REVIEWS_PENDING.set(pending)
    ALERTS_UNACKNOWLEDGED.set(unanswered)


# --- what the monitor reads ---------------------------------------------------------------------


async def take_in(ctx: MonitorContext, facts: Sequence[Fact]) -> None:
    """Keep what a batch of records says, in one transaction, each record at most once."""
    async with unit_of_work(ctx.sessions) as session:
        for fact in facts:
            try:
                await _keep(session, fact)
            except NOT_UNDERSTOOD as exc:
                log.warning("record not understood", extra={"error": type(exc).__name__})
    ctx.lag.measure_soon()  # and the gauges with it


async def _keep(session: AsyncSession, fact: Fact) -> None:
    if isinstance(fact, c.AuditLine):
        await _keep_decision(session, fact)
    elif isinstance(fact, OncallReport):
        await _keep_oncall(session, fact)
    elif isinstance(fact, c.DeadLetterSeen):
        await _keep_dead_letter(session, fact)
    else:
        await _keep_rejection(session, fact)


async def _keep_decision(session: AsyncSession, line: c.AuditLine) -> None:
    if line.notice_id is not None and line.notice_kind in ERASURES:
        await _keep_erasure(session, line)
    if line.decision is not None and line.alert_id is not None:
        await _keep_review(session, line.alert_id, decision=line.decision, at=line.recorded_at)
        return  # a review discloses nothing: it is no decision to count
    if await repository.decision_known(session, chain=line.chain, seq=line.seq):
        return  # redelivered
    session.add(Decision(**line.model_dump(exclude={"alert_id", "decision", "notice_id", "notice_kind", "holder"})))
    if line.review:
        await _keep_review(session, line.event_id, decision=None, at=line.recorded_at)


async def _keep_erasure(session: AsyncSession, line: c.AuditLine) -> None:
    """An erasure asked of a holder (its notice's record), or confirmed (its receipt's). The two are on
    different chains of the audit topic, so either may be read first: each fills in its part."""
    assert line.notice_id is not None
    holder = line.holder or Holder.AGENCY.value
    row = await repository.erasure_notice(session, line.notice_id)
    if line.outcome == ACKNOWLEDGED:  # the receipt: from the holder (its source) back to the asker
        if row is None:
            row = ErasureNotice(notice_id=line.notice_id, agency=line.source, holder=holder, issued_at=line.recorded_at)
        row.confirmed_at = row.confirmed_at or line.recorded_at
    elif row is None:
        row = ErasureNotice(notice_id=line.notice_id, agency=line.recipient, holder=holder, issued_at=line.recorded_at)
    else:
        row.agency, row.holder, row.issued_at = line.recipient, holder, line.recorded_at
    session.add(row)


async def unconfirmed_erasures(ctx: MonitorContext) -> c.UnconfirmedErasures:
    """Holders that have not confirmed an erasure within the network's time, oldest first."""
    hours = ctx.network.monitor.erasure_confirm_hours
    now = ctx.clock.now()
    async with ctx.sessions() as session:
        rows = await repository.unconfirmed_erasures(session, issued_before=now - timedelta(hours=hours))
    return c.UnconfirmedErasures(
        older_than_hours=hours,
        items=[
            c.UnconfirmedErasure(
                notice_id=row.notice_id,
                agency=row.agency,
                holder=row.holder,
                issued_at=as_utc(row.issued_at),
                age_seconds=(now - as_utc(row.issued_at)).total_seconds(),
            )
            for row in rows
        ],
    )


async def _keep_review(session: AsyncSession, alert_id: str, *, decision: str | None, at: datetime) -> None:
    """One row per alert, whichever of its disclosures or its decision is read first."""
    row = await repository.review(session, alert_id) or Review(alert_id=alert_id)
    if decision is None:
        row.recorded_at = min(row.recorded_at or at, at)
    elif row.status == "pending":
        row.status, row.decided_at = decision, at
    session.add(row)


async def _keep_rejection(session: AsyncSession, report: StatusReport) -> None:
    rejected = next((line for line in report.recipients if line.outcome == "rejected"), None)
    if rejected is not None and not await repository.rejection_known(session, report.event_id):
        session.add(
            Rejection(
                event_id=report.event_id,
                source=report.source,
                event_type=report.type,
                reason=rejected.reason,
                at=report.decided_at,
            )
        )


async def _keep_oncall(session: AsyncSession, report: OncallReport) -> None:
    row = await repository.oncall_outcome(session, agency=report.agency, alert_id=report.alert_id)
    if row is None:
        row = OncallOutcome(**report.model_dump(exclude={"kind", "at"}), updated_at=report.at)
    elif row.state == "acknowledged" or row.updated_at > report.at:
        return  # acknowledged is final; an older report changes nothing
    row.state, row.levels_paged, row.updated_at = report.state, report.levels_paged, report.at
    if report.state == "acknowledged":
        row.acknowledged_after_s = (report.at - report.received_at).total_seconds()
    session.add(row)


async def _keep_dead_letter(session: AsyncSession, seen: c.DeadLetterSeen) -> None:
    if not await repository.dead_letter_known(
        session, topic=seen.dlq_topic, partition=seen.dlq_partition, offset=seen.dlq_offset
    ):
        session.add(DeadLetter(**seen.model_dump()))


def retention(ctx: MonitorContext) -> Purge:
    """The monitor's purge: dead-letter records and sign-in sessions. Its decisions, reviews and on-call
    outcomes are metadata the Pôle's figures are made of: no period applies to them."""
    steps = {Stored.DEAD_LETTERS: (repository.purge_dead_letters,), **SIGN_IN}
    return Purge(service="monitor", sessions=ctx.sessions, retention=ctx.network.retention, steps=steps)
