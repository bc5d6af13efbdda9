"""The monitor's JSON API and dashboard: flow per sector, decisions, lag, dead letters, reviews, unanswered alerts.

Reading needs `monitor:read`; replaying a dead letter or approving a danger disclosure needs
`monitor:act` as well. Nothing here carries a subject, a category's content or a record's value.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import FileResponse
from sqlalchemy import func
from sqlmodel import col, select

from maillage.core.crypto.tokens import Principal, Scope, staff_ref
from maillage.core.storage.db import unit_of_work
from maillage.core.web.auth import require
from maillage.core.web.http import asset, page
from maillage.core.web.paging import Cursor, Limit, decode_cursor, next_cursor
from maillage.core.web.problems import PROBLEM_JSON
from maillage.domain.errors import Conflict, Forbidden, InvalidRequest, NotFound
from maillage.monitor.models import DeadLetter, Decision, OncallOutcome, Rejection, Review
from maillage.monitor.service import Monitor

STATIC = Path(__file__).parent / "static"
PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "RFC 9457 problem"}
ERRORS = {401: PROBLEM, 403: PROBLEM, 404: PROBLEM, 409: PROBLEM, 422: PROBLEM}
OUTCOMES = ("delivered", "filtered", "denied")
MAX_BUCKETS = 1440

router = APIRouter(responses=ERRORS)  # type: ignore[arg-type]


def _monitor(request: Request) -> Monitor:
    monitor: Monitor = request.app.state.monitor
    return monitor


def _operators(request: Request) -> str:
    issuer: str = request.app.state.monitor.network.operators.issuer
    return issuer


Service = Annotated[Monitor, Depends(_monitor)]
# Operators' tokens come from the operators' issuer only: an agency's token never carries their powers.
Reader = Annotated[Principal, require(Scope.MONITOR_READ, issuers=_operators)]
Actor = Annotated[Principal, require(Scope.MONITOR_ACT, issuers=_operators)]
Minutes = Annotated[int, Query(ge=1, le=60 * 24 * 31, description="How far back, in minutes.")]


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


@router.get("/dashboard", include_in_schema=False)
async def dashboard() -> FileResponse:
    return page(STATIC / "dashboard.html")


@router.get("/static/{name}", include_in_schema=False)
async def dashboard_asset(name: str) -> FileResponse:
    return asset(STATIC, name)


@router.get("/v1/overview", tags=["monitor"], summary="Totals at a glance")
async def overview(_: Reader, monitor: Service, minutes: Minutes = 60) -> dict[str, Any]:
    since = datetime.now(UTC) - timedelta(minutes=minutes)
    async with monitor.sessions() as session:
        outcomes = dict(
            (
                await session.exec(
                    select(Decision.outcome, func.count())
                    .where(Decision.recorded_at >= since)
                    .group_by(Decision.outcome)
                )
            ).all()
        )
        dead = (
            await session.exec(
                select(func.count()).select_from(DeadLetter).where(col(DeadLetter.replayed_at).is_(None))
            )
        ).one()
        reviews = (await session.exec(select(func.count()).select_from(Review).where(Review.status == "pending"))).one()
        unanswered = (
            await session.exec(
                select(func.count()).select_from(OncallOutcome).where(OncallOutcome.state == "unacknowledged")
            )
        ).one()
        rejected = (await session.exec(select(func.count()).select_from(Rejection).where(Rejection.at >= since))).one()
    return {
        "minutes": minutes,
        "generated_at": _iso(datetime.now(UTC)),
        "decisions": {o: int(outcomes.get(o, 0)) for o in OUTCOMES},
        "rejected": int(rejected),
        "dead_letters_waiting": int(dead),
        "reviews_pending": int(reviews),
        "alerts_unacknowledged": int(unanswered),
        "max_lag": max((g.lag for g in monitor.lag), default=0),
    }


@router.get("/v1/flow", tags=["monitor"], summary="Decisions per recipient sector over time")
async def flow(
    _: Reader, monitor: Service, minutes: Minutes = 60, bucket_seconds: Annotated[int, Query(ge=10, le=86400)] = 60
) -> dict[str, Any]:
    buckets = -(-minutes * 60 // bucket_seconds)
    if buckets > MAX_BUCKETS:
        raise InvalidRequest(f"At most {MAX_BUCKETS} points per series: widen bucket_seconds or shorten minutes.")
    now = datetime.now(UTC)
    start = now - timedelta(minutes=minutes)
    async with monitor.sessions() as session:
        rows = (
            await session.exec(
                select(Decision.recorded_at, Decision.sector, Decision.outcome).where(Decision.recorded_at >= start)
            )
        ).all()
    counts: dict[str, list[Counter[str]]] = defaultdict(lambda: [Counter() for _ in range(buckets)])
    for recorded_at, sector, outcome in rows:
        at = recorded_at if recorded_at.tzinfo else recorded_at.replace(tzinfo=UTC)
        index = min(buckets - 1, int((at - start).total_seconds() // bucket_seconds))
        counts[sector][index][outcome] += 1
    times = [_iso(start + timedelta(seconds=i * bucket_seconds)) for i in range(buckets)]
    return {
        "bucket_seconds": bucket_seconds,
        "times": times,
        "series": [
            {"sector": sector, **{o: [c[o] for c in per] for o in OUTCOMES}} for sector, per in sorted(counts.items())
        ],
    }


@router.get("/v1/decisions", tags=["monitor"], summary="Decisions by event type, sector, outcome and legal basis")
async def decisions(_: Reader, monitor: Service, minutes: Minutes = 1440) -> dict[str, Any]:
    since = datetime.now(UTC) - timedelta(minutes=minutes)
    async with monitor.sessions() as session:
        rows = (
            await session.exec(
                select(
                    Decision.event_type,
                    Decision.sector,
                    Decision.outcome,
                    Decision.legal_basis,
                    func.count(),
                    func.sum(Decision.removed),
                )
                .where(Decision.recorded_at >= since)
                .group_by(Decision.event_type, Decision.sector, Decision.outcome, Decision.legal_basis)
            )
        ).all()
    return {
        "minutes": minutes,
        "items": [
            {"type": t, "sector": s, "outcome": o, "legal_basis": b, "count": int(n), "categories_removed": int(r or 0)}
            for t, s, o, b, n, r in rows
        ],
    }


@router.get("/v1/lag", tags=["monitor"], summary="Consumer lag per group, as last read from the broker")
async def lag(_: Reader, monitor: Service) -> dict[str, Any]:
    return {
        "measured_at": _iso(monitor.lag_measured_at),
        "groups": [
            {
                "group": g.group.removeprefix(monitor.topics.prefix),
                "topic": g.topic.removeprefix(monitor.topics.prefix),
                "lag": g.lag,
                "partitions": g.partitions,
            }
            for g in monitor.lag
        ],
    }


@router.get("/v1/dead-letters", tags=["monitor"], summary="Records no service could process, and why")
async def dead_letters(
    _: Reader, monitor: Service, limit: Annotated[int, Query(ge=1, le=1000)] = 200, waiting: bool = False
) -> dict[str, Any]:
    async with monitor.sessions() as session:
        query = select(DeadLetter).order_by(col(DeadLetter.id).desc()).limit(limit)
        if waiting:
            query = query.where(col(DeadLetter.replayed_at).is_(None))
        rows = (await session.exec(query)).all()
    return {"items": [_dead_letter(d, monitor) for d in rows]}


def _dead_letter(d: DeadLetter, monitor: Monitor) -> dict[str, Any]:
    return {
        "id": d.id,
        "reason": d.reason,
        "detail": d.detail,
        "service": d.service,
        "topic": d.topic.removeprefix(monitor.topics.prefix),
        "event_id": d.event_id,
        "event_type": d.event_type,
        "source": d.source,
        "at": _iso(d.at),
        "replayed_at": _iso(d.replayed_at),
        "replays": d.replays,
        "replayable": monitor.replayable(d),
    }


@router.post(
    "/v1/dead-letters/{dead_letter_id}/replay",
    tags=["monitor"],
    status_code=status.HTTP_202_ACCEPTED,
    summary="Publish the record again to the topic it came from",
)
async def replay(dead_letter_id: int, _: Reader, __: Actor, monitor: Service) -> dict[str, Any]:
    return _dead_letter(await monitor.replay(dead_letter_id), monitor)


@router.get("/v1/reviews", tags=["monitor"], summary="Disclosures under `danger`, pending a second person's review")
async def reviews(
    _: Reader, monitor: Service, pending: bool = True, cursor: Cursor = None, limit: Limit = 200
) -> dict[str, Any]:
    async with monitor.sessions() as session:
        query = select(Review).where(col(Review.id) > decode_cursor(cursor)).order_by(col(Review.id)).limit(limit)
        if pending:
            query = query.where(Review.status == "pending")
        rows = (await session.exec(query)).all()
    return {"items": [_review(r) for r in rows], "next_cursor": next_cursor([r.id or 0 for r in rows], limit=limit)}


def _review(r: Review) -> dict[str, Any]:
    return {
        "id": r.id,
        "event_id": r.event_id,
        "recipient": r.recipient,
        "sector": r.sector,
        "source": r.source,
        "recorded_at": _iso(r.recorded_at),
        "status": r.status,
        "approved_at": _iso(r.approved_at),
        "approved_by": r.approved_by,
    }


@router.post(
    "/v1/reviews/{review_id}/approve",
    tags=["monitor"],
    summary="Approve a danger disclosure: a second person, not the one who raised the alert",
)
async def approve(review_id: int, _: Reader, actor: Actor, monitor: Service) -> dict[str, Any]:
    reviewer = staff_ref(actor)
    async with unit_of_work(monitor.sessions) as session:
        review = await session.get(Review, review_id)
        if review is None:
            raise NotFound("There is no review with this id.")
        if review.status != "pending":
            raise Conflict("This disclosure was already reviewed.")
        # Four eyes: not the person who raised the alert, nor anyone of that agency (which issues its own
        # staff's tokens, so could name anyone): a second person, elsewhere in the network.
        if review.raised_by == reviewer or actor.agency == review.source:
            raise Forbidden(
                "The disclosure must be reviewed by a second person, of another agency than the one "
                "that raised the alert."
            )
        review.status, review.approved_by, review.approved_at = "approved", reviewer, datetime.now(UTC)
        session.add(review)
        answer = _review(review)
    monitor.refresh_gauges_soon()
    return answer


@router.get("/v1/alerts/unacknowledged", tags=["monitor"], summary="Alerts no on-call worker acknowledged")
async def unacknowledged(_: Reader, monitor: Service, cursor: Cursor = None, limit: Limit = 200) -> dict[str, Any]:
    async with monitor.sessions() as session:
        rows = (
            await session.exec(
                select(OncallOutcome)
                .where(OncallOutcome.state == "unacknowledged", col(OncallOutcome.id) > decode_cursor(cursor))
                .order_by(col(OncallOutcome.id))
                .limit(limit)
            )
        ).all()
    return {
        "items": [
            {
                "agency": a.agency,
                "alert_id": a.alert_id,
                "severity": a.severity,
                "levels_paged": a.levels_paged,
                "received_at": _iso(a.received_at),
                "since": _iso(a.updated_at),
            }
            for a in rows
        ],
        "next_cursor": next_cursor([a.id or 0 for a in rows], limit=limit),
    }
