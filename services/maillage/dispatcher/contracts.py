"""What the dispatcher answers, over HTTP and on the live streams: the alert a worker sees, who the worker is,
what operators see of unanswered alerts (the OpenAPI contract the worker's page and operators' tools read)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from maillage.domain.escalation import AlertState
from maillage.domain.vocabulary import Severity


def _iso(moment: datetime) -> str:
    return moment.isoformat()


# Written as Python's isoformat ("+00:00", not pydantic's "Z"): the page and the clients read these strings.
Moment = Annotated[
    datetime, PlainSerializer(_iso, return_type=str), WithJsonSchema({"type": "string", "format": "date-time"})
]


class Answer(BaseModel):
    model_config = ConfigDict(frozen=True)

    def message(self) -> dict[str, Any]:
        """As a live stream sends it (a JSON object, serialised once for every worker it goes to)."""
        return self.model_dump(mode="json")


class GroupMember(Answer):
    """An alert grouped under another about the same person: shown with it, acknowledged with it."""

    alert_id: str
    severity: Severity
    kind: str
    source_agency: str
    source_name: str
    raised_at: Moment
    received_at: Moment
    data: dict[str, Any]


class AlertView(Answer):
    """An alert as an on-call worker sees it, with every alert grouped under it."""

    alert_id: str
    agency: str
    source_agency: str
    source_name: str
    severity: Severity
    kind: str
    state: AlertState
    level: int
    level_name: str
    levels: int
    raised_at: Moment
    received_at: Moment
    deadline: Moment | None
    grouped: int
    subject_ref: str
    subject_role: str
    data: dict[str, Any]  # what the gateway let this agency receive
    acknowledged_at: Moment | None
    acknowledged_by: str | None
    group: list[GroupMember]


class AlertList(Answer):
    items: list[AlertView]


class Hello(Answer):
    """Who this worker is, and at which levels they are on call now; the server's time beside it."""

    type: Literal["hello"] = "hello"
    worker: str
    agency: str
    agency_name: str
    levels: list[int]
    now: Moment


class UnacknowledgedAlert(Answer):
    """An alert every level let pass, for operators: metadata only, no one's personal data."""

    alert_id: str
    agency: str
    source_agency: str
    severity: Severity
    kind: str
    levels_paged: int
    grouped: int
    received_at: Moment


class UnacknowledgedPage(Answer):
    items: list[UnacknowledgedAlert]
    next_cursor: str | None


class FallbackCall(Answer):
    """What an agency's fallback webhook is sent when every level let an alert pass: metadata only."""

    type: Literal["maillage.oncall.unacknowledged"] = "maillage.oncall.unacknowledged"
    agency: str
    alert_id: str
    severity: Severity
    kind: str
    levels_paged: int
    grouped: int
    received_at: Moment
    exhausted_at: Moment


# --- live stream messages, server → worker -------------------------------------------------------------


class AlertMessage(Answer):
    """`alert`: the worker is paged; `update`: an alert they see changed; `acked`: the answer to their ack."""

    type: Literal["alert", "update", "acked"]
    alert: AlertView


class Acknowledged(Answer):
    """Someone took an alert in hand (perhaps this worker: `by_you`)."""

    type: Literal["acknowledged"] = "acknowledged"
    alert_id: str
    acknowledged_at: Moment
    level: int
    by_you: bool


class Snapshot(Answer):
    # The server's time beside the alerts' times: a phone with a wrong clock still shows true ages.
    type: Literal["snapshot"] = "snapshot"
    alerts: list[AlertView]
    now: Moment


class SessionsEnded(BaseModel):
    ended: int = Field(description="Sessions ended; their pages are signed out and their streams closed.")
