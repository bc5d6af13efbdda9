"""The gateway's tables: consent state, decisions already taken, return routes; and core's audit chain.

A danger disclosure's review is an audit record only: its justification stays at the raising agency."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Field, SQLModel

from maillage.core.audit.models import AuditCheckpoint, AuditRow, AuditWalk
from maillage.core.consents.models import ConsentTerms
from maillage.core.storage.db import json_field
from maillage.core.storage.migrations import Schema


class GrantRow(ConsentTerms, table=True):
    __tablename__ = "gateway_grant"

    granted_by: str
    withdrawn_at: datetime | None = None


class ProcessedEvent(SQLModel, table=True):
    """One row per submitted event decided: reprocessing the same record re-emits the same decisions."""

    __tablename__ = "gateway_processed"

    event_id: str = Field(primary_key=True)
    digest: str
    partition: int
    offset: int
    disclosures: list[dict[str, Any]] = json_field()
    decided_at: datetime


class ReturnRoute(SQLModel, table=True):
    """Who sent a referral or an alert, and who received it: the way back for its answers."""

    __tablename__ = "gateway_return_route"

    event_id: str = Field(primary_key=True)
    sender: str
    subject_ref: str
    recipients: list[str] = json_field()


class ConferenceRow(SQLModel, table=True):
    """A case conference (art. 458ter): who takes part, about whom, until when. Metadata only."""

    __tablename__ = "gateway_case_conference"

    conference_id: str = Field(primary_key=True)
    convener: str
    participants: list[str] = json_field()
    subjects: list[str] = json_field()
    ends_at: datetime
    closed_at: datetime | None = None


class NoticeRow(SQLModel, table=True):
    """A notice sent to a past recipient of some events (gateway/notices.py), and its receipt: the return
    route of the acknowledgement to the agency whose event caused it."""

    __tablename__ = "gateway_notice"

    notice_id: str = Field(primary_key=True)
    cause: str = Field(index=True)  # the event that caused it (a withdrawal, a review)
    kind: str
    originator: str  # the agency whose event caused it: the receipt goes back to it
    recipient: str
    subject_ref: str
    subject_role: str
    events: list[str] = json_field()
    categories: list[str] = json_field()
    erase: bool = False
    consents: list[str] = json_field(default_factory=list)
    issued_at: datetime
    acknowledged_at: datetime | None = None
    erased: int | None = None
    holder: str = "agency"  # the recipient's own service, or the dispatcher answering for it
    role: str | None = None  # a role correction's: the person's role from now on
    misrouted: list[str] = json_field(default_factory=list)  # received under the wrong role, not allowed by the right
    disallowed: list[str] = json_field(default_factory=list)  # the categories in them the right role does not allow


class SubjectRoleRow(SQLModel, table=True):
    """A person's role as corrected by an agency that holds them: it wins over what later events state."""

    __tablename__ = "gateway_subject_role"

    subject_ref: str = Field(primary_key=True)
    role: str
    previous: str
    reason: str
    corrected_by: str
    event_id: str  # the correction
    corrected_at: datetime


class ReportHoldRow(SQLModel, table=True):
    """A hold on a person's disclosure report, placed by an agency that holds them, until a date."""

    __tablename__ = "gateway_report_hold"

    hold_id: str = Field(primary_key=True)
    event_id: str
    subject_ref: str = Field(index=True)
    agency_id: str
    until: datetime
    reason: str
    placed_at: datetime


class IssuedReportRow(SQLModel, table=True):
    """A report request answered: to whom, when, issued or held. Metadata only: the document itself is sent to
    the requesting agency and never kept here; a request read again after a crash is drawn up again from the
    audit chain as it stood then (gateway/reports.py)."""

    __tablename__ = "gateway_issued_report"

    issued_id: str = Field(primary_key=True)  # the event id of the subject.report_issued
    request_event_id: str = Field(index=True)
    request_id: str
    requester: str
    subject_ref: str
    subject_role: str
    language: str
    state: str  # issued | held
    issued_at: datetime


TABLES: list[type[SQLModel]] = [
    GrantRow,
    ProcessedEvent,
    ReturnRoute,
    AuditRow,
    AuditCheckpoint,
    AuditWalk,
    ConferenceRow,
    NoticeRow,
    SubjectRoleRow,
    ReportHoldRow,
    IssuedReportRow,
]
SCHEMA = Schema("gateway", TABLES, versions=Path(__file__).parent / "migrations")
