"""The monitor's state and actions: lag polling, gauges, replaying a dead letter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.config.network import Network
from maillage.core.messaging.kafka_auth import KafkaAuth, client_kwargs
from maillage.core.messaging.topics import Topics
from maillage.core.observability.metrics import ALERTS_UNACKNOWLEDGED, CONSUMER_LAG, REVIEWS_PENDING
from maillage.core.storage.db import unit_of_work
from maillage.domain.errors import Conflict, NotFound
from maillage.monitor.lag import GroupLag, consumer_lag
from maillage.monitor.models import DeadLetter, OncallOutcome, Review

log = logging.getLogger(__name__)
DLQ_HEADERS = ("dlq_reason", "dlq_detail", "dlq_topic", "dlq_partition", "dlq_offset")


class Monitor:
    def __init__(
        self,
        *,
        network: Network,
        topics: Topics,
        sessions: async_sessionmaker[AsyncSession],
        bootstrap: str,
        producer: AIOKafkaProducer,
        auth: KafkaAuth | None = None,
        lag_interval: float = 5.0,
    ) -> None:
        self.network = network
        self.topics = topics
        self.sessions = sessions
        self.bootstrap = bootstrap
        self.producer = producer
        self.auth = auth
        self.lag_interval = lag_interval
        self.lag: list[GroupLag] = []
        self.lag_measured_at: datetime | None = None
        self._wake = asyncio.Event()

    def refresh_gauges_soon(self) -> None:
        self._wake.set()

    async def watch(self) -> None:
        """Every few seconds: the consumer lag from the broker, and the gauges operators alert on."""
        while True:
            try:
                self.lag = await consumer_lag(self.bootstrap, prefix=self.topics.prefix, auth=self.auth)
                self.lag_measured_at = datetime.now(UTC)
                for g in self.lag:
                    CONSUMER_LAG.labels(
                        g.group.removeprefix(self.topics.prefix), g.topic.removeprefix(self.topics.prefix)
                    ).set(g.lag)
                await self.refresh_gauges()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker away for a while: keep the last figures, try again
                log.warning("lag not read", extra={"error": type(exc).__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.lag_interval)
            self._wake.clear()

    async def refresh_gauges(self) -> None:
        async with self.sessions() as session:
            pending = (
                await session.exec(select(func.count()).select_from(Review).where(Review.status == "pending"))
            ).one()
            unanswered = (
                await session.exec(
                    select(func.count()).select_from(OncallOutcome).where(OncallOutcome.state == "unacknowledged")
                )
            ).one()
        REVIEWS_PENDING.set(pending)
        ALERTS_UNACKNOWLEDGED.set(unanswered)

    def replayable(self, dead: DeadLetter) -> bool:
        # The monitor may write only where any agency may: the submitted topic. What an agency could not
        # read from its delivery topic is answered at the source (the gateway delivers it again).
        return dead.dlq_topic == self.topics.dlq and dead.topic == self.topics.submitted and dead.partition is not None

    async def replay(self, dead_letter_id: int) -> DeadLetter:
        async with self.sessions() as session:
            dead = await session.get(DeadLetter, dead_letter_id)
        if dead is None:
            raise NotFound("There is no dead letter with this id.")
        if not self.replayable(dead):
            raise Conflict(
                "Only records refused by the gateway can be replayed from here; this one was refused "
                f"by {dead.service}."
            )
        key, value, headers = await self._read_dead_letter(dead)
        await self.producer.send_and_wait(dead.topic, value, key=key, headers=headers)
        async with unit_of_work(self.sessions) as session:
            stored = await session.get(DeadLetter, dead_letter_id)
            assert stored is not None
            stored.replayed_at, stored.replays = datetime.now(UTC), stored.replays + 1
            session.add(stored)
        log.info("dead letter replayed", extra={"dead_letter": dead_letter_id, "reason": dead.reason})
        return stored

    async def _read_dead_letter(self, dead: DeadLetter) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
        """The dead letter's record as it was first published (its value never leaves Kafka otherwise)."""
        reader = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
            **client_kwargs(self.auth),
        )
        await reader.start()
        try:
            tp = TopicPartition(dead.dlq_topic, dead.dlq_partition)
            reader.assign([tp])
            reader.seek(tp, dead.dlq_offset)
            async with asyncio.timeout(10):
                while True:
                    batch = await reader.getmany(tp, timeout_ms=500)
                    for record in batch.get(tp, []):
                        if record.offset == dead.dlq_offset:
                            headers = [(k, v) for k, v in record.headers if k not in DLQ_HEADERS]
                            return record.key, record.value or b"", headers
                        if record.offset > dead.dlq_offset:
                            raise Conflict("This dead letter is no longer on the topic (retention).")
        except TimeoutError:
            raise Conflict("This dead letter could not be read back from the topic.") from None
        finally:
            await reader.stop()
