"""The outbox table: each record waiting to be published, and when it was."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

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


class Unpublished(Protocol):
    """What the relay reads of a record to sign and send it: an `OutboxRecord`, or its `Pending` columns."""

    @property
    def id(self) -> int | None: ...
    @property
    def topic(self) -> str: ...
    @property
    def key(self) -> bytes: ...
    @property
    def value(self) -> bytes: ...
    @property
    def headers(self) -> bytes: ...
    @property
    def tag(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Pending:
    """A record the relay has yet to publish, as it reads it: no ORM object to build for a row it only sends."""

    id: int
    topic: str
    key: bytes
    value: bytes
    headers: bytes
    tag: str | None
