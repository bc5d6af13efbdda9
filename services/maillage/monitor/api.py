"""The monitor's JSON API and dashboard: flow per sector, decisions, lag, dead letters, reviews, unanswered alerts.

Reading needs `monitor:read`; replaying a dead letter needs `monitor:act` as well. Danger disclosures are
reviewed at the agency that raised them, where the justification is: operators only count them.
Nothing here carries a subject, a category's content or a record's value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse

from maillage.core.i18n import negotiate
from maillage.core.web.http import add_page, page
from maillage.core.web.paging import Cursor, Limit
from maillage.core.web.problems import PROBLEM_JSON
from maillage.core.web.signin import sessions_of
from maillage.monitor import contracts as c
from maillage.monitor import figures, services
from maillage.monitor.deps import Actor, Context, Reader

STATIC = Path(__file__).parent / "static"
PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "RFC 9457 problem"}
ERRORS = {401: PROBLEM, 403: PROBLEM, 404: PROBLEM, 409: PROBLEM, 422: PROBLEM}

Minutes = Annotated[int, Query(ge=1, le=60 * 24 * 31, description="How far back, in minutes.")]
BucketSeconds = Annotated[
    int,
    Query(
        ge=10,
        le=86400,
        # A rule between two parameters, which a parameter's schema cannot carry: said here, checked with a 422.
        description="Seconds per point; at most 1440 points per series (minutes * 60 / bucket_seconds <= 1440).",
    ),
]
DeadLetterLimit = Annotated[int, Query(ge=1, le=1000)]
# The dead letters' ids are an INTEGER column, 32-bit signed on PostgreSQL: a larger number is refused (422), not
# sent to the driver, which raised on it (a 503, found by `maillage chaos`'s schemathesis run on PostgreSQL).
DeadLetterId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]

Quarter = Annotated[
    str | None, Query(pattern=r"^\d{4}-Q[1-4]$", description="The quarter, as 2026-Q4; the current one by default.")
]
Pole = Annotated[str | None, Query(min_length=1, max_length=64, description="One Pôle; every Pôle by default.")]
Threshold = Annotated[
    int | None,
    Query(
        ge=2, le=1000, description="Withhold counts below this; at least the network file's (monitor.stats_threshold)."
    ),
]
AcceptLanguage = Annotated[str | None, Header()]

router = APIRouter(responses=ERRORS)  # type: ignore[arg-type]
add_page(router, "/dashboard", html=STATIC / "dashboard.html")


@router.get("/stats", include_in_schema=False)
async def stats_page() -> HTMLResponse:
    return page(STATIC / "stats.html")  # its stylesheet and script are served beside the dashboard's


@router.get("/v1/overview", tags=["monitor"], summary="Totals at a glance")
async def overview(_: Reader, ctx: Context, minutes: Minutes = 60) -> c.Overview:
    return await services.overview(ctx, minutes=minutes)


@router.get("/v1/flow", tags=["monitor"], summary="Decisions per recipient sector over time")
async def flow(_: Reader, ctx: Context, minutes: Minutes = 60, bucket_seconds: BucketSeconds = 60) -> c.Flow:
    return await services.flow(ctx, minutes=minutes, bucket_seconds=bucket_seconds)


@router.get("/v1/decisions", tags=["monitor"], summary="Decisions by event type, sector, outcome and legal basis")
async def decisions(_: Reader, ctx: Context, minutes: Minutes = 1440) -> c.Decisions:
    return await services.decisions(ctx, minutes=minutes)


@router.get(
    "/v1/erasures/unconfirmed",
    tags=["monitor"],
    summary="Holders that have not confirmed an erasure within the network's time: which agency, since when",
)
async def unconfirmed_erasures(_: Reader, ctx: Context) -> c.UnconfirmedErasures:
    return await services.unconfirmed_erasures(ctx)


@router.get("/v1/stats", tags=["monitor"], summary="The Pôles' figures for a quarter, small counts withheld")
async def stats(
    _: Reader, ctx: Context, quarter: Quarter = None, pole: Pole = None, threshold: Threshold = None
) -> c.Stats:
    return await services.stats(ctx, quarter=quarter, pole=pole, threshold=threshold)


@router.get(
    "/v1/stats.csv",
    tags=["monitor"],
    summary="The same figures as a CSV file, headers in the reader's language",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "RFC 4180 CSV"}},
)
async def stats_csv(
    _: Reader,
    ctx: Context,
    quarter: Quarter = None,
    pole: Pole = None,
    threshold: Threshold = None,
    accept_language: AcceptLanguage = None,
) -> Response:
    found = await services.stats(ctx, quarter=quarter, pole=pole, threshold=threshold)
    return Response(
        figures.as_csv(found, language=negotiate(accept_language)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{figures.filename(found, pole=pole)}"'},
    )


@router.get("/v1/stats/labels", tags=["monitor"], summary="The words of the figures' page, in the reader's language")
async def stats_labels(accept_language: AcceptLanguage = None) -> dict[str, str]:
    return figures.labels(negotiate(accept_language))


@router.get("/v1/lag", tags=["monitor"], summary="Consumer lag per group, as last read from the broker")
async def lag(_: Reader, ctx: Context) -> c.Lag:
    return services.lag(ctx)


@router.get("/v1/dead-letters", tags=["monitor"], summary="Records no service could process, and why")
async def dead_letters(_: Reader, ctx: Context, limit: DeadLetterLimit = 200, waiting: bool = False) -> c.DeadLetters:
    return await services.dead_letters(ctx, limit=limit, waiting=waiting)


@router.post(
    "/v1/dead-letters/{dead_letter_id}/replay",
    tags=["monitor"],
    status_code=status.HTTP_202_ACCEPTED,
    summary="Publish the record again to the topic it came from",
)
async def replay(dead_letter_id: DeadLetterId, _: Reader, __: Actor, ctx: Context) -> c.DeadLetterOut:
    return await services.replay(ctx, dead_letter_id)


@router.get("/v1/reviews", tags=["monitor"], summary="Danger disclosures: how many wait for review, since when")
async def reviews(_: Reader, ctx: Context) -> c.ReviewCounts:
    return await services.reviews(ctx)


@router.get("/v1/alerts/unacknowledged", tags=["monitor"], summary="Alerts no on-call worker acknowledged")
async def unacknowledged(_: Reader, ctx: Context, cursor: Cursor = None, limit: Limit = 200) -> c.UnansweredPage:
    return await services.unacknowledged(ctx, cursor=cursor, limit=limit)


@router.delete(
    "/v1/operators/{operator}/sessions",
    tags=["monitor"],
    summary="End every dashboard session of an operator (scope monitor:act): their dashboards sign out",
)
async def end_operator_sessions(
    operator: Annotated[str, PathParam(min_length=1, max_length=200)], actor: Actor, request: Request
) -> c.SessionsEnded:
    return c.SessionsEnded(ended=await sessions_of(request).revoke(actor.agency, subject=operator))
