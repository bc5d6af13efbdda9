"""The webhook tables: registrations, one delivery per (webhook, event), and every attempt."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class Webhook(SQLModel, table=True):
    # Not the former `webhook` table: registrations made before destinations were checked and lifetimes
    # bounded are not carried over; their owners register again under the `webhooks:manage` scope.
    __tablename__ = "webhook_registration"

    id: str = Field(primary_key=True)
    url: str
    secret: str
    created_at: datetime
    # None only for a webhook the network file names (the dispatcher's fallback): it lives as long as that line.
    expires_at: datetime | None = Field(default=None, index=True)
    registered_by: str | None = None  # staff_ref of the token that registered it
    active: bool = True


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_delivery"

    id: int | None = Field(default=None, primary_key=True)
    webhook_id: str = Field(index=True)
    event_id: str
    body: bytes
    state: str = "pending"  # pending | delivered | failed
    attempts: int = 0
    next_attempt_at: datetime = Field(index=True)
    created_at: datetime


class WebhookAttempt(SQLModel, table=True):
    """One call: the receiver's HTTP status, or none when no answer came in time. Why a connection failed
    is never kept: a log that told refused from timed out would map the network behind the receiver."""

    __tablename__ = "webhook_attempt"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(index=True)
    attempt: int
    at: datetime
    status_code: int | None = None

    @property
    def outcome(self) -> str:
        return "delivered" if succeeded(self.status_code) else "failed"


TABLES: list[type[SQLModel]] = [Webhook, WebhookDelivery, WebhookAttempt]


def succeeded(status: int | None) -> bool:
    return status is not None and 200 <= status < 300
