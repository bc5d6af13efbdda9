"""The audit chain's table: one row per disclosure decision, metadata only, each hash-linked to the one before."""

from __future__ import annotations

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
    # Optional JSON fields are SQL NULL when absent (not JSON null), so that they are left out when hashed.
    consents: list[str] | None = Field(default=None, sa_type=JSON(none_as_null=True), nullable=True)
    notice: dict[str, Any] | None = Field(default=None, sa_type=JSON(none_as_null=True), nullable=True)
    policy_sha256: str
    recorded_at: str  # ISO 8601 exactly as hashed
    prev_hash: str
    hash: str
