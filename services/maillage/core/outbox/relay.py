"""The outbox relay: publishes the outbox's records in order; a broker outage delays them, never loses them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.messaging.bus import ProducerSlot, send_batched
from maillage.core.observability.metrics import OUTBOX_BACKLOG, OUTBOX_REFUSED
from maillage.core.outbox import repository
from maillage.core.outbox.models import Unpublished
from maillage.core.outbox.signing import BatchSigner, signed_headers
from maillage.core.polling import wait_set
from maillage.core.storage.db import locks_rows, short_read, unit_of_work

log = logging.getLogger(__name__)
BATCH_SIZE = 500  # rows read, published and signed together (the most: a backlog's batches)


class OutboxRelay:
    """Publishes outbox rows in order; a broker outage delays them, never loses them. A send that failed for good
    costs the producer (`ProducerSlot`): its rows go out again with a new one, which the broker cannot refuse as
    out of sequence; a row sent twice that way is a duplicate its consumers drop by event id (signed again, in
    another batch: the gateway tells a duplicate by its content, signatures aside). `signers`, by owner, sign the
    events of each batch (`signing.py`)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        producer: ProducerSlot,
        *,
        signers: Mapping[str, BatchSigner] | None = None,
        batch_size: int = BATCH_SIZE,
        idle_poll: float = 1.0,
        name: str = "service",
    ) -> None:
        self._backlog = OUTBOX_BACKLOG.labels(name)
        self._refused = OUTBOX_REFUSED.labels(name)
        self._sessions = sessions
        self._producer = producer
        self._signers = signers or {}
        self._batch_size = batch_size
        self._idle_poll = idle_poll
        self._wakeup = asyncio.Event()

    def notify(self) -> None:
        """Called after a commit that added outbox rows, so they leave at once rather than at the next poll."""
        self._wakeup.set()

    async def backlog(self) -> int:
        async with self._sessions() as session:
            return await repository.backlog(session)

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
                await wait_set(self._wakeup, timeout=self._idle_poll)
                self._wakeup.clear()

    async def publish_pending(self) -> int:
        if locks_rows(self._sessions):
            # Two processes of one service on one PostgreSQL database: the rows stay locked from the read to
            # their mark, so the other relay waits for them, then takes the next ones — each record published
            # once, in order. On SQLite a transaction held across the send would stop the service's own writes
            # (one writer): there the read and the mark are two transactions, for the one process it serves.
            async with unit_of_work(self._sessions) as session:
                rows = await repository.pending(session, limit=self._batch_size, lock=True)
                if await self._send(rows):
                    await repository.mark_published(session, [r.id or 0 for r in rows], at=datetime.now(UTC))
        else:
            async with short_read(self._sessions) as session:
                rows = await repository.pending(session, limit=self._batch_size)
            if await self._send(rows):
                async with unit_of_work(self._sessions) as session:
                    await repository.mark_published(session, [r.id or 0 for r in rows], at=datetime.now(UTC))
        if len(rows) < self._batch_size:
            self._backlog.set(0)
        return len(rows)

    async def _send(self, rows: Sequence[Unpublished]) -> int:
        """Every row on Kafka, acknowledged; a failed send costs the producer (see the class)."""
        self._backlog.set(len(rows))  # at least this many wait (all of them, below a full batch)
        if not rows:
            return 0
        headers = signed_headers(rows, self._signers)
        if refused := headers.count(None):
            self._refused.inc(refused)  # never sent; marked with the rest, so that what follows leaves
        producer = await self._producer.get()
        futures: list[asyncio.Future[Any]] = []
        try:
            # One record batch per partition, as aiokafka's accumulator would make them, without its cost per
            # record (`bus.send_batched`).
            kept = ((r.topic, r.key, r.value, h) for r, h in zip(rows, headers, strict=True) if h is not None)
            futures = await send_batched(producer, kept)
            await asyncio.gather(*futures)
        except Exception as exc:
            for future in futures:  # the others' failures are this one's
                future.add_done_callback(_retrieved)
            await self._producer.discard(error=exc)
            raise
        return len(rows)


def _retrieved(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()
