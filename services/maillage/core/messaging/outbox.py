"""The transactional outbox: rows written with the business change, published to Kafka by a relay."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaProducer
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.messaging.bus import Record, dead_letter_headers, header
from maillage.core.messaging.envelope import Envelope
from maillage.core.observability.metrics import DEAD_LETTERS, OUTBOX_BACKLOG
from maillage.core.storage.db import unit_of_work

log = logging.getLogger(__name__)


class OutboxRecord(SQLModel, table=True):
    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(index=True)
    topic: str
    key: bytes
    value: bytes
    headers: bytes
    created_at: datetime
    published_at: datetime | None = Field(default=None, index=True)


def enqueue(session: AsyncSession, envelope: Envelope, *, topic: str) -> None:
    """Add an event to the outbox inside the caller's transaction."""
    key, value, headers = envelope.to_kafka()
    session.add(
        OutboxRecord(
            event_id=envelope.id,
            topic=topic,
            key=key,
            value=value,
            headers=orjson.dumps([(k, v.decode()) for k, v in headers]),
            created_at=datetime.now(UTC),
        )
    )


def enqueue_record(
    session: AsyncSession, *, event_id: str, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]
) -> None:
    """Add a plain record (metadata only, no envelope) to the outbox inside the caller's transaction."""
    session.add(
        OutboxRecord(
            event_id=event_id,
            topic=topic,
            key=key,
            value=value,
            headers=orjson.dumps([(k, v.decode()) for k, v in headers]),
            created_at=datetime.now(UTC),
        )
    )


def enqueue_dead_letter(
    session: AsyncSession, record: Record, *, topic: str, service: str, reason: str, detail: str
) -> None:
    """A record this service could not read, to its dead-letter `topic` with the reason, in the caller's
    transaction: it leaves with the batch's other effects, and is lost with none of them."""
    headers = dead_letter_headers(
        reason=reason,
        detail=detail,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        original=list(record.headers),
    )
    key = header(list(record.headers), "ce_id") or f"{record.topic}:{record.partition}:{record.offset}"
    enqueue_record(
        session, event_id=key, topic=topic, key=record.key or key.encode(), value=record.value or b"", headers=headers
    )
    DEAD_LETTERS.labels(service, reason).inc()
    log.warning("dead letter", extra={"reason": reason, "topic": record.topic, "offset": record.offset})


class OutboxRelay:
    """Publishes outbox rows in order; a broker outage delays them, never loses them."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        producer: AIOKafkaProducer,
        *,
        batch_size: int = 500,
        idle_poll: float = 1.0,
        name: str = "service",
    ) -> None:
        self._backlog = OUTBOX_BACKLOG.labels(name)
        self._sessions = sessions
        self._producer = producer
        self._batch_size = batch_size
        self._idle_poll = idle_poll
        self._wakeup = asyncio.Event()

    def notify(self) -> None:
        """Called after a commit that added outbox rows, so they leave at once rather than at the next poll."""
        self._wakeup.set()

    async def backlog(self) -> int:
        async with self._sessions() as session:
            rows = await session.exec(select(OutboxRecord.id).where(col(OutboxRecord.published_at).is_(None)))
            return len(rows.all())

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                published = await self.publish_pending()
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay retrying", extra={"error": type(exc).__name__})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if published < self._batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=self._idle_poll)
                self._wakeup.clear()

    async def publish_pending(self) -> int:
        async with self._sessions() as session:
            rows = (
                await session.exec(
                    select(OutboxRecord)
                    .where(col(OutboxRecord.published_at).is_(None))
                    .order_by(col(OutboxRecord.id))
                    .limit(self._batch_size)
                )
            ).all()
        self._backlog.set(len(rows))  # at least this many wait (all of them, below a full batch)
        if not rows:
            return 0
        futures = [
            await self._producer.send(
                row.topic, row.value, key=row.key, headers=[(k, v.encode()) for k, v in orjson.loads(row.headers)]
            )
            for row in rows
        ]
        await asyncio.gather(*futures)
        async with unit_of_work(self._sessions) as session:
            await session.exec(  # type: ignore[call-overload]
                update(OutboxRecord)
                .where(col(OutboxRecord.id).in_([r.id for r in rows]))
                .values(published_at=datetime.now(UTC))
            )
        if len(rows) < self._batch_size:
            self._backlog.set(0)
        return len(rows)
