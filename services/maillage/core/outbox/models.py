"""The outbox table: each record waiting to be published, and when it was."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class OutboxRecord(SQLModel, table=True):
    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(index=True)
    topic: str
    key: bytes
    value: bytes
    headers: bytes
    # An event kept unsigned: its integrity tag, without which the relay neither signs nor sends it (signing.py).
    tag: str | None = None
    created_at: datetime
    published_at: datetime | None = Field(default=None, index=True)
