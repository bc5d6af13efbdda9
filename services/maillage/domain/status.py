"""The gateway's report to a sender about one submitted event: per recipient, what was decided (metadata only)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from maillage.domain.notices import NoticeLine

SOURCE_HEADER = "maillage_source"
DISPATCHER_SOURCE = "dispatcher"  # the dispatcher's on-call reports, for the operators' monitor


class OncallReport(BaseModel):
    """What became of an alert at an agency's on-call rota (metadata only)."""

    model_config = ConfigDict(frozen=True)

    kind: str = "oncall"
    agency: str
    alert_id: str
    severity: str
    state: str  # unacknowledged (every level paged in vain) | acknowledged
    levels_paged: int
    received_at: datetime
    at: datetime


class RecipientLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    recipient: str
    sector: str | None = None
    outcome: str  # delivered | filtered | denied | recorded | rejected | unroutable
    legal_basis: str | None = None
    delivered: list[str] = []
    removed: dict[str, str] = {}
    reason: str | None = None
    review: bool = False


class StatusReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: str
    source: str
    type: str | None
    decided_at: datetime
    recipients: list[RecipientLine]
    notices: list[NoticeLine] = []  # the notices an event caused, and their receipts (gateway/notices.py)
