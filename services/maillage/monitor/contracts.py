"""The monitor's answers to operators, and what it keeps of each record it reads: metadata only, never content."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from maillage.core.clock import as_utc

# ISO 8601 with its offset written out (`+00:00`), as the dashboard and the command line have always read it.
Moment = Annotated[
    datetime,
    AfterValidator(as_utc),
    PlainSerializer(lambda moment: moment.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class Answer(BaseModel):
    model_config = ConfigDict(frozen=True)


class DecisionCounts(Answer):
    delivered: int
    filtered: int
    denied: int


class Overview(Answer):
    minutes: int
    generated_at: Moment
    decisions: DecisionCounts
    rejected: int = Field(description="Events the gateway would not decide.")
    dead_letters_waiting: int = Field(description="Dead letters not replayed yet.")
    reviews_pending: int = Field(
        description="Alerts disclosed under `danger` awaiting their review at the raising agency."
    )
    alerts_unacknowledged: int = Field(description="Alerts every on-call level let pass.")
    max_lag: int = Field(description="The largest consumer lag, in records, at the last measure.")


class SectorSeries(Answer):
    """Decisions for one recipient sector, one count per time bucket."""

    sector: str
    delivered: list[int]
    filtered: list[int]
    denied: list[int]


class Flow(Answer):
    bucket_seconds: int
    times: list[Moment] = Field(description="The start of each bucket.")
    series: list[SectorSeries]


class DecisionTotal(Answer):
    type: str
    sector: str
    outcome: str
    legal_basis: str
    count: int
    categories_removed: int


class Decisions(Answer):
    minutes: int
    items: list[DecisionTotal]


class GroupLagOut(Answer):
    group: str
    topic: str
    lag: int
    partitions: int


class Lag(Answer):
    measured_at: Moment | None
    groups: list[GroupLagOut]


class DeadLetterOut(Answer):
    id: int
    reason: str
    detail: str
    service: str = Field(description="Who refused the record: the writer of the dead-letter topic.")
    topic: str
    event_id: str | None
    event_type: str | None
    source: str | None
    at: Moment
    replayed_at: Moment | None
    replays: int
    replayable: bool


class DeadLetters(Answer):
    items: list[DeadLetterOut]


class ReviewCounts(Answer):
    """Art. 458bis reviews, counted: each happens at the agency that raised the alert, where its
    justification is; operators see how many wait and for how long, never what or who."""

    pending: int = Field(description="Alerts disclosed under `danger` with no decision recorded yet.")
    approved: int
    rejected: int
    oldest_pending_since: Moment | None = Field(description="When the longest-waiting one was recorded.")
    oldest_pending_age_seconds: float | None = Field(description="How long it has been waiting.")


class UnansweredAlert(Answer):
    agency: str
    alert_id: str
    severity: str
    levels_paged: int
    received_at: Moment
    since: Moment


class UnansweredPage(Answer):
    items: list[UnansweredAlert]
    next_cursor: str | None


# --- what the monitor keeps of the records it reads ---------------------------------------------


Vocable = Annotated[str, Field(max_length=64)]


class AuditLine(Answer):
    """One audit record of the gateway, without the subject nor the categories' names."""

    chain: int = 0  # records written before the gateway kept one chain per partition carry none
    seq: int
    event_id: str
    event_type: str
    source: str
    recipient: str
    sector: str
    legal_basis: str
    outcome: str
    removed: int  # how many categories were removed
    review: bool
    alert_id: str | None = None  # a review's alert
    decision: str | None = None  # a review's decision
    recorded_at: datetime
    # What the Pôles' figures count: vocabulary values (a longer value is no vocabulary's, and is refused).
    pole: Vocable | None = None
    severity: Vocable | None = None
    kind: Vocable | None = None
    referral_decision: Vocable | None = None
    decline_reason: Vocable | None = None
    conference_purpose: Vocable | None = None
    # A notice's (gateway/notices.py): which, of what kind, to which of the recipient's services.
    notice_id: str | None = None
    notice_kind: Vocable | None = None
    holder: Vocable | None = None


class DeadLetterSeen(Answer):
    """Where a dead letter lies, why, and what it was: never its value."""

    dlq_topic: str
    dlq_partition: int
    dlq_offset: int
    reason: str
    detail: str
    service: str
    topic: str
    partition: int | None
    offset: int | None
    event_id: str | None
    event_type: str | None
    source: str | None
    at: datetime


class SessionsEnded(BaseModel):
    ended: int = Field(description="Sessions ended; their pages are signed out.")


# --- figures for public policy -------------------------------------------------------------------


class StatsTable(Answer):
    """Counts by two vocabularies; null where a count is withheld (below the threshold, or one it could be
    worked out from)."""

    name: str = Field(description="referrals | referral_outcomes | alerts | legal_bases | consultations | ...")
    rows: list[str]
    columns: list[str]
    cells: list[list[int | None]] = Field(description="One list per row, one count per column; null: withheld.")
    row_totals: list[int | None]
    column_totals: list[int | None]
    total: int | None


class StatsTiming(Answer):
    """Time to acknowledge alerts of one severity; null below the threshold."""

    severity: str
    acknowledged: int | None
    median_seconds: float | None
    p90_seconds: float | None


class PoleStats(Answer):
    pole: str
    quarter: str
    tables: list[StatsTable]
    acknowledgement: list[StatsTiming]


class Stats(Answer):
    quarter: str
    threshold: int = Field(description="Counts below it are withheld, with any figure that would give them away.")
    generated_at: Moment
    poles: list[PoleStats]


class UnconfirmedErasure(Answer):
    """A holder asked to erase a person that has not confirmed: which agency, which of its services, since
    when. Never whom it is about."""

    notice_id: str
    agency: str
    holder: str
    issued_at: datetime
    age_seconds: float


class UnconfirmedErasures(Answer):
    older_than_hours: int = Field(description="The network file's `[monitor] erasure_confirm_hours`.")
    items: list[UnconfirmedErasure]
