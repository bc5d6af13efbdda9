"""The agency's own tables: consents it registered, events it sent, their fate, its inbox, its referrals."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from maillage.core.clients.models import CLIENT_TABLES
from maillage.core.consents.models import ConsentTerms
from maillage.core.outbox.models import OutboxRecord
from maillage.core.storage.db import json_field
from maillage.core.storage.migrations import Schema
from maillage.core.webhooks.models import TABLES as WEBHOOK_TABLES
from maillage.domain.referrals import ReferralState


class ConsentRow(ConsentTerms, table=True):
    __tablename__ = "consent"

    granted_at: datetime
    withdrawn_at: datetime | None = None
    event_id: str
    obtained_by: str | None = None  # staff_ref of who obtained it
    notice_version: str | None = None
    notice_language: str | None = None


class SentEvent(SQLModel, table=True):
    __tablename__ = "sent_event"

    event_id: str = Field(primary_key=True)
    type: str
    subject_ref: str = Field(index=True)
    recipients: list[str] = json_field()
    legal_basis: str
    created_at: datetime


class RecipientStatus(SQLModel, table=True):
    """What the gateway decided for one recipient of an event this agency sent (metadata only)."""

    __tablename__ = "recipient_status"
    __table_args__ = (UniqueConstraint("event_id", "recipient"),)

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(index=True)
    recipient: str
    sector: str | None = None
    outcome: str
    legal_basis: str | None = None
    delivered: list[str] = json_field(default_factory=list)
    removed: dict[str, str] = json_field(default_factory=dict)
    reason: str | None = None
    review: bool = False
    decided_at: datetime


class AlertProgress(SQLModel, table=True):
    """What became of an alert this agency raised, at one recipient agency: the dispatcher's word."""

    __tablename__ = "alert_progress"

    alert_id: str = Field(primary_key=True)
    recipient: str = Field(primary_key=True)
    state: str  # escalated | unacknowledged | acknowledged (final)
    level: int
    escalated_at: datetime | None = None
    acknowledged_at: datetime | None = None


class InboxItem(SQLModel, table=True):
    __tablename__ = "inbox"

    seq: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(unique=True)
    type: str
    source_agency: str
    subject_ref: str = Field(index=True)
    subject_role: str
    legal_basis: str
    purpose: str
    sent_at: datetime
    received_at: datetime
    data: dict[str, Any] = json_field()


class NoticeReceipt(SQLModel, table=True):
    """A notice an event of this agency caused at a past recipient (a withdrawal's), and its receipt."""

    __tablename__ = "notice_receipt"

    notice_id: str = Field(primary_key=True)
    cause: str = Field(index=True)
    recipient: str
    kind: str
    events: list[str] = json_field()
    categories: list[str] = json_field()
    erase: bool = False
    delivered_at: datetime | None = None
    acknowledged_at: datetime | None = None
    erased: int | None = None
    holder: str = "agency"  # the recipient's own service, or the dispatcher answering for its on-call
    misrouted: list[str] = json_field(default_factory=list)  # a role correction's: received under the wrong role
    disallowed: list[str] = json_field(default_factory=list)  # and the categories the right role does not allow


class ReferralRow(SQLModel, table=True):
    __tablename__ = "referral"

    referral_id: str = Field(primary_key=True)
    direction: str  # "out" (this agency sent it) or "in" (this agency received it)
    counterpart: str  # the recipient token (out) or the sender agency id (in)
    subject_ref: str = Field(index=True)
    subject_role: str
    state: ReferralState
    decline_reason: str | None = None
    updated_at: datetime
    reason: str | None = None  # what the person is referred for (ReferralReason)
    reason_comment: str | None = None  # with `other`; at the recipient only when its consent and ceiling let it through


class CaseConferenceRow(SQLModel, table=True):
    """A case conference (art. 458ter) this agency convened, or takes part in (as its convening told it)."""

    __tablename__ = "case_conference"

    conference_id: str = Field(primary_key=True)
    convener: str
    authorisation: str
    purpose: str
    participants: list[str] = json_field()
    subjects: list[str] = json_field()
    ends_at: datetime
    closed_at: datetime | None = None
    event_id: str  # the convening event


class ConsultationRow(SQLModel, table=True):
    """An anonymous consultation this agency put to its Pôle's desk ("out"), or its desk received ("in")."""

    __tablename__ = "consultation"

    consultation_id: str = Field(primary_key=True)  # the event id of the consultation.requested
    direction: str  # "out" (asked by this agency) or "in" (put to this agency, the desk)
    counterpart: str  # the desk (out) or the asking agency (in)
    consultation_ref: str  # what it is about instead of a person: its envelope's subject ("c-…")
    pole: str
    subject_role: str
    questions: list[str] = json_field()
    state: str  # pending | answered
    asked_at: datetime
    answer: dict[str, Any] | None = Field(default=None, sa_type=JSON)  # what the asker received of it
    answered_at: datetime | None = None


class AlertReview(SQLModel, table=True):
    """A danger alert this agency raised (art. 458bis), with its justification, and a second professional's
    decision on it: the justification never leaves the agency, so it is reviewed here."""

    __tablename__ = "alert_review"

    seq: int | None = Field(default=None, primary_key=True)
    alert_id: str = Field(unique=True)
    subject_ref: str
    subject_role: str
    purpose: str
    severity: str
    kind: str
    justification: str
    recipients: list[str] = json_field()
    raised_by: str | None = None
    raised_at: datetime
    decision: str | None = Field(default=None, index=True)  # approved | rejected; None while pending
    reviewer: str | None = None
    comment: str | None = None
    decided_at: datetime | None = None
    review_event_id: str | None = None


class ReportRequestRow(SQLModel, table=True):
    """A person's request for their disclosure report, registered here, and the gateway's answer: the document
    (for this person, handed over by this agency) or the date until which it is held."""

    __tablename__ = "report_request"

    request_id: str = Field(primary_key=True)
    event_id: str = Field(unique=True)  # the subject.report_requested event: its fate says if it was refused
    subject_ref: str = Field(index=True)
    language: str
    requested_by: str  # staff_ref of who registered it
    requested_at: datetime
    state: str  # pending | issued | held
    answered_at: datetime | None = None
    disclosures: int | None = None
    held_until: datetime | None = None
    hold_reasons: list[str] = json_field(default_factory=list)
    html: str | None = Field(default=None, sa_type=Text)
    pdf: bytes | None = Field(default=None, sa_type=LargeBinary)


class ReportHoldRow(SQLModel, table=True):
    """A hold this agency placed on a person's disclosure report, and who placed it."""

    __tablename__ = "report_hold"

    hold_id: str = Field(primary_key=True)
    event_id: str
    subject_ref: str = Field(index=True)
    until: datetime
    reason: str
    placed_by: str  # staff_ref
    placed_at: datetime


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency"

    key: str = Field(primary_key=True)
    request_hash: str
    status_code: int
    response: dict[str, Any] = json_field()
    created_at: datetime


TABLES: list[type[SQLModel]] = [
    ConsentRow,
    SentEvent,
    RecipientStatus,
    AlertProgress,
    InboxItem,
    ReferralRow,
    ConsultationRow,
    CaseConferenceRow,
    IdempotencyRecord,
    OutboxRecord,
    NoticeReceipt,
    *WEBHOOK_TABLES,
    AlertReview,
    *CLIENT_TABLES,
    ReportRequestRow,
    ReportHoldRow,
]
SCHEMA = Schema("agency", TABLES, versions=Path(__file__).parent / "migrations")
