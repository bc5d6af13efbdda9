"""The monitor's own tables: metadata of decisions, dead letters, reviews and on-call outcomes. Never a payload."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from maillage.core.sessions.models import SESSION_TABLES
from maillage.core.storage.migrations import Schema


class Decision(SQLModel, table=True):
    """One audit record of the gateway, without the subject: what went to which sector, on which basis."""

    __tablename__ = "monitor_decision"

    chain: int = Field(default=0, primary_key=True)  # the gateway's audit chain: one per submitted partition
    seq: int = Field(primary_key=True)
    event_id: str = Field(index=True)
    event_type: str
    source: str
    recipient: str
    sector: str = Field(index=True)
    legal_basis: str
    outcome: str
    removed: int = 0  # how many categories were removed
    review: bool = False
    recorded_at: datetime = Field(index=True)
    # What the Pôles' figures count (domain/statistics.py): vocabulary values, NULL when they do not apply or
    # the record was written before the gateway kept them.
    pole: str | None = Field(default=None, index=True)
    severity: str | None = None
    kind: str | None = None
    referral_decision: str | None = None
    decline_reason: str | None = None
    conference_purpose: str | None = None


class Review(SQLModel, table=True):
    """An alert disclosed under `danger` (art. 458bis), pending until a second professional of the raising
    agency decides on it there. Only what operators count: its status and times, never who or why."""

    __tablename__ = "monitor_review"

    alert_id: str = Field(primary_key=True)
    status: str = Field(default="pending", index=True)  # pending | approved | rejected
    recorded_at: datetime | None = None  # when its first danger disclosure was recorded
    decided_at: datetime | None = None


class ErasureNotice(SQLModel, table=True):
    """An erasure asked of one holder (an agency's service, or the dispatcher for it) and when it confirmed:
    what operators chase. Never whom it is about."""

    __tablename__ = "monitor_erasure_notice"

    notice_id: str = Field(primary_key=True)
    agency: str
    holder: str
    issued_at: datetime
    confirmed_at: datetime | None = Field(default=None, index=True)


class DeadLetter(SQLModel, table=True):
    """Where a dead letter lies, why, and what it was (type, source): its value stays on the topic."""

    __tablename__ = "monitor_dead_letter"
    __table_args__ = (UniqueConstraint("dlq_topic", "dlq_partition", "dlq_offset"),)

    id: int | None = Field(default=None, primary_key=True)
    dlq_topic: str  # the dead-letter topic it lies on: its writer is who refused it
    dlq_partition: int
    dlq_offset: int
    reason: str = Field(index=True)
    detail: str
    service: str  # who refused it: the writer of the dead-letter topic
    topic: str
    partition: int | None = None
    offset: int | None = None
    event_id: str | None = None
    event_type: str | None = None
    source: str | None = None
    at: datetime
    replayed_at: datetime | None = None
    replays: int = 0


class Rejection(SQLModel, table=True):
    """An event the gateway would not decide (status `rejected`), by reason."""

    __tablename__ = "monitor_rejection"

    event_id: str = Field(primary_key=True)
    source: str
    event_type: str | None = None
    reason: str | None = None
    at: datetime


class OncallOutcome(SQLModel, table=True):
    """What the dispatcher reported of an alert at one agency: acknowledged, or unacknowledged at every level."""

    __tablename__ = "monitor_oncall"
    __table_args__ = (UniqueConstraint("agency", "alert_id"),)

    id: int | None = Field(default=None, primary_key=True)
    agency: str
    alert_id: str
    severity: str
    state: str = Field(index=True)  # unacknowledged | acknowledged
    levels_paged: int
    received_at: datetime
    updated_at: datetime
    acknowledged_after_s: float | None = None


TABLES: list[type[SQLModel]] = [ErasureNotice, Decision, Review, DeadLetter, Rejection, OncallOutcome, *SESSION_TABLES]
SCHEMA = Schema("monitor", TABLES, versions=Path(__file__).parent / "migrations")
