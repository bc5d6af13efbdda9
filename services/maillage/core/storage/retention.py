"""The purge every service runs on a schedule: what the network file's `[retention]` says is past its time goes, in
batches, each in its own short transaction, counted by kind (never by whom)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.clock import Clock
from maillage.core.config.network import StorageRetention
from maillage.core.observability.metrics import RETENTION_PURGED
from maillage.core.outbox import repository as outbox
from maillage.core.sessions import repository as signin
from maillage.core.storage.db import unit_of_work
from maillage.core.webhooks import repository as webhooks
from maillage.domain.retention import Stored

log = logging.getLogger(__name__)

# One batch of one kind: given the cut-off and a batch size, purges at most that many rows and says how many.
PurgeStep = Callable[[AsyncSession, datetime, int], Awaitable[int]]

Steps = Mapping[Stored, Sequence[PurgeStep]]

# The shared tables' purges, for the services that hold them.
OUTBOX: Steps = {Stored.PUBLISHED_OUTBOX: (outbox.purge_published,)}
WEBHOOKS: Steps = {
    Stored.WEBHOOK_BODIES: (webhooks.erase_finished_bodies,),
    Stored.WEBHOOK_DELIVERIES: (webhooks.purge_finished_deliveries,),
}
SIGN_IN: Steps = {Stored.SIGNIN_SESSIONS: (signin.purge_ended_sessions, signin.purge_used_invitations)}


@dataclass(frozen=True)
class Purge:
    """A service's purge: for each kind it holds, the steps that remove it (dependent rows first)."""

    service: str
    sessions: async_sessionmaker[AsyncSession]
    retention: StorageRetention
    steps: Steps

    async def __call__(self, now: datetime) -> dict[Stored, int]:
        """Purge what is past its time at `now`; the rows purged by kind."""
        counts: dict[Stored, int] = {}
        for kind, moment in self.retention.cutoffs(now).items():
            for step in self.steps.get(kind, ()):
                counts[kind] = counts.get(kind, 0) + await self._drain(step, moment)
        for kind, count in counts.items():
            RETENTION_PURGED.labels(self.service, kind.value).inc(count)
        if any(counts.values()):
            log.info("retention purge", extra={"service": self.service, **{k.value: n for k, n in counts.items()}})
        return counts

    async def _drain(self, step: PurgeStep, moment: datetime) -> int:
        # Batches rather than one DELETE: a year of inbox on PostgreSQL would hold its locks (and on SQLite the
        # only writer's place) for as long as it takes; between batches, the service's own writes go through.
        batch, total = self.retention.purge_batch, 0
        while True:
            async with unit_of_work(self.sessions) as session:
                done = await step(session, moment, batch)
            total += done
            if done < batch:
                return total

    async def run(self, clock: Clock) -> None:
        """Purge now, then every `purge_interval_minutes` of `clock`, until cancelled. A purge that fails (the
        database away) is logged and tried again at the next interval: it never stops the service."""
        every = timedelta(minutes=self.retention.purge_interval_minutes)
        never = asyncio.Event()
        while True:
            now = clock.now()
            try:
                await self(now)
            except (SQLAlchemyError, OSError) as error:
                log.error("retention purge failed", extra={"service": self.service, "error": type(error).__name__})
            await clock.wait(now + every, never)
