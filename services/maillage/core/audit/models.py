"""The audit chain's table: one row per disclosure decision, metadata only, each hash-linked to the one before."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Field, SQLModel

from maillage.core.storage.db import json_field


class AuditRow(SQLModel, table=True):
    """Metadata only: who received which categories about which pseudonymous subject, on which basis."""

    __tablename__ = "gateway_audit"
    # One chain per input partition of the gateway: the partition's owner alone appends to it, and the
    # constraint turns a fenced owner's late append into a failed transaction rather than a fork.
    __table_args__ = (UniqueConstraint("chain", "seq", name="uq_gateway_audit_chain_seq"),)

    id: int | None = Field(default=None, primary_key=True)  # the order records were stored in, across chains
    chain: int = Field(default=0)
    seq: int  # the position in its chain
    event_id: str = Field(index=True)
    event_type: str
    source: str
    recipient: str
    sector: str
    subject_ref: str = Field(index=True)
    subject_role: str
    legal_basis: str
    outcome: str
    delivered: list[str] = json_field()
    removed: dict[str, str] = json_field()
    reason: str | None = None
    review: bool = False
    raised_by: str | None = None  # a danger alert's raiser (pseudonymous), for the four-eyes review
    alert_id: str | None = Field(default=None, index=True)  # a review's alert (art. 458bis)
    decision: str | None = None  # a review's decision: approved | rejected
    reviewer: str | None = None  # a review's second professional (pseudonymous)
    legal_reference: str | None = None  # under legal_obligation: the court order or the article of law
    conference_id: str | None = None  # under case_conference: the conference (art. 458ter)
    # What the Pôles' figures count (domain/statistics.py): vocabulary values only, NULL when they do not apply.
    pole: str | None = None
    severity: str | None = None
    kind: str | None = None
    referral_decision: str | None = None
    decline_reason: str | None = None
    conference_purpose: str | None = None
    # Optional JSON fields are SQL NULL when absent (not JSON null), so that they are left out when hashed.
    consents: list[str] | None = Field(default=None, sa_type=JSON(none_as_null=True), nullable=True)
    notice: dict[str, Any] | None = Field(default=None, sa_type=JSON(none_as_null=True), nullable=True)
    # A person's erasure or role correction asked for: the ground or reason, who was told (metadata only).
    action: dict[str, Any] | None = Field(default=None, sa_type=JSON(none_as_null=True), nullable=True)
    # A disclosure report's request, hold or issuing (gateway/reports.py): ids, dates, codes, counts.
    report: dict[str, Any] | None = Field(default=None, sa_type=JSON(none_as_null=True), nullable=True)
    policy_sha256: str
    recorded_at: str  # ISO 8601 exactly as hashed
    prev_hash: str
    hash: str


class AuditCheckpoint(SQLModel, table=True):
    """A chain's last link found intact, signed by the gateway that checked it: the next verification walks on
    from it instead of from the first record. Whoever rewrites a record before it must change this link's hash
    (or break a link), and cannot sign a new checkpoint without the gateway's key."""

    __tablename__ = "gateway_audit_checkpoint"

    chain: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    seq: int
    hash: str
    event_id: str  # the link's, to name it should it go missing
    recorded_at: str
    records: int  # in the chain up to and with the link
    policy_sha256s: list[str] = json_field()
    verified_at: str  # ISO 8601, signed
    sigkid: str
    sig: str


class AuditWalk(SQLModel, table=True):
    """A full walk of every chain from its first record, run in the background (hours on a long chain): its
    progress while it runs, a heartbeat that shows it was interrupted, and its report once done."""

    __tablename__ = "gateway_audit_walk"

    id: str = Field(primary_key=True)
    started_at: datetime
    updated_at: datetime  # a heartbeat: a walk not updated for a while was interrupted (its gateway stopped)
    finished_at: datetime | None = None
    records_done: int = 0
    records_total: int = 0
    report: dict[str, Any] | None = Field(default=None, sa_type=JSON(none_as_null=True), nullable=True)
