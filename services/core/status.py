"""The gateway's report to a sender about one submitted event: per recipient, what was decided (metadata only)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

SOURCE_HEADER = "maillage_source"


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
