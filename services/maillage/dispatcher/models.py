"""The dispatcher's own tables: the alerts it serves, their level and deadline, and who was paged."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from maillage.core.outbox.models import OutboxRecord
from maillage.core.sessions.models import SESSION_TABLES
from maillage.core.storage.db import json_field
from maillage.core.storage.migrations import Schema
from maillage.core.webhooks.models import TABLES as WEBHOOK_TABLES
from maillage.domain.escalation import AlertState


class OncallAlert(SQLModel, table=True):
    """One alert delivered to one served agency."""

    __tablename__ = "oncall_alert"
    __table_args__ = (UniqueConstraint("agency_id", "alert_id"),)

    id: int | None = Field(default=None, primary_key=True)
    agency_id: str = Field(index=True)
    alert_id: str = Field(index=True)  # the alert.raised event id
    source_agency: str
    subject_ref: str = Field(index=True)
    subject_role: str
    severity: str
    kind: str
    data: dict[str, Any] = json_field()  # what the gateway let this agency receive
    raised_at: datetime
    received_at: datetime
    state: AlertState = Field(index=True)
    group_of: str | None = None
    grouped: int = 1  # alerts in this group, this one included
    level: int = 1
    level_started_at: datetime
    deadline: datetime | None = Field(default=None, index=True)
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_level: int | None = None


class Paging(SQLModel, table=True):
    """Workers paged together for an alert at a level: never paged for it again, restarts included.

    One row per paging, its workers a list: an alert pages up to every connected worker of a level at once
    (a thousand), and a row per worker cost the dispatcher more than everything else it does per alert.
    """

    __tablename__ = "oncall_paging"

    id: int | None = Field(default=None, primary_key=True)
    agency_id: str
    alert_id: str = Field(index=True)
    level: int
    workers: list[str] = json_field()
    paged_at: datetime


TABLES: list[type[SQLModel]] = [OncallAlert, Paging, OutboxRecord, *WEBHOOK_TABLES, *SESSION_TABLES]
SCHEMA = Schema("dispatcher", TABLES, versions=Path(__file__).parent / "migrations")
