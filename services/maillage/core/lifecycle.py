"""A service's life: the FastAPI app every service is, what its lifespan starts, and the order it stops in."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.config.settings import ServiceSettings
from maillage.core.crypto.trust import PublicTrust, Trust, watch_keys
from maillage.core.messaging import bus
from maillage.core.storage.db import create_schema, make_engine, session_factory
from maillage.core.storage.private import keep_private
from maillage.core.storage.repository import answers
from maillage.core.web.http import ReadinessCheck, install_common

log = logging.getLogger(__name__)

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def service_app(
    settings: ServiceSettings,
    *,
    title: str,
    summary: str,
    audience: str,
    lifespan: Lifespan,
    ready: ReadinessCheck | None = None,
) -> FastAPI:
    """A service's app: no page loading scripts from elsewhere, problem bodies, limits, security headers,
    probes and metrics; tokens taken for `audience` only."""
    keep_private(settings.data_dir)  # before anything is written: databases, secrets, logs
    app = FastAPI(title=title, version="1", summary=summary, lifespan=lifespan, docs_url=None, redoc_url=None)
    install_common(
        app,
        max_body_bytes=settings.max_body_bytes,
        audience=audience,
        scrape_token=settings.scrape_token(),
        ready=ready,
    )
    return app


class TaskGroup:
    """Background tasks owned by a service's lifespan: started together, cancelled together."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, coro: Coroutine[Any, Any, None], *, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._report)
        self._tasks.append(task)

    @staticmethod
    def _report(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "background task stopped", extra={"task": task.get_name(), "error": type(task.exception()).__name__}
            )

    @property
    def healthy(self) -> bool:
        return all(not t.done() for t in self._tasks)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


@dataclass
class Running:
    """What a service's lifespan has started: its database, its Kafka clients, its background tasks."""

    settings: ServiceSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    producer: AIOKafkaProducer
    tasks: TaskGroup = field(default_factory=TaskGroup)
    consumers: list[AIOKafkaConsumer] = field(default_factory=list)
    transactional_id: str | None = None

    async def renew_producer(self) -> AIOKafkaProducer:
        """A new producer, with the same transactional id, in place of one aiokafka can no longer use (fenced, or
        a transaction ended in a fatal error: a state it never leaves). Starting it fences the old one's epoch
        and aborts what that left open. While Kafka is away, raises KafkaError and keeps the old one."""
        fresh = bus.producer(
            self.settings.bootstrap, transactional_id=self.transactional_id, auth=self.settings.kafka_auth
        )
        try:
            await fresh.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await fresh.stop()
            raise
        old, self.producer = self.producer, fresh
        with contextlib.suppress(Exception):
            await asyncio.wait_for(old.stop(), timeout=10)
        with contextlib.suppress(Exception):
            await old.client.close()  # a stop cut short (its batches never flushed) leaves the connections open
        return fresh

    async def consumer(self, *topics: str, group_id: str) -> AIOKafkaConsumer:
        """A started consumer of `topics` in `group_id`, stopped with the service."""
        consumer = bus.consumer(self.settings.bootstrap, *topics, group_id=group_id, auth=self.settings.kafka_auth)
        await consumer.start()
        self.consumers.append(consumer)
        return consumer

    async def consume(self, *topics: str, group_id: str, handle: bus.BatchHandler, name: str) -> None:
        """Hand every batch of `topics` to `handle`, at least once, committing after each (bus.consume_forever)."""
        consumer = await self.consumer(*topics, group_id=group_id)
        self.tasks.start(bus.consume_forever(consumer, handle, name=name), name=name)

    def watch_keys(self, trusts: Sequence[Trust | PublicTrust], *, on_change: Callable[[], None] | None = None) -> None:
        """Reload the keys every `key_refresh_seconds`: a retired key is refused within that bound."""
        self.tasks.start(watch_keys(trusts, every=self.settings.key_refresh_seconds, on_change=on_change), name="keys")

    def ready(self) -> Callable[[], Awaitable[bool]]:
        """Ready: the database answers, every background task runs, and every consumer has its partitions."""

        async def check() -> bool:
            return await answers(self.engine) and self.tasks.healthy and all(c.assignment() for c in self.consumers)

        return check

    async def stop(self) -> None:
        """In order: the background work first, then Kafka, then the database."""
        await self.tasks.stop()
        for consumer in self.consumers:
            await consumer.stop()
        await self.producer.stop()
        await self.engine.dispose()


@asynccontextmanager
async def running(
    settings: ServiceSettings, *, tables: list[type[SQLModel]], transactional_id: str | None = None
) -> AsyncIterator[Running]:
    """The service's database (its own tables created) and its producer, started; all stopped on exit."""
    engine = make_engine(settings.db_url())
    await create_schema(engine, tables)
    producer = bus.producer(settings.bootstrap, transactional_id=transactional_id, auth=settings.kafka_auth)
    await producer.start()
    started = Running(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        producer=producer,
        transactional_id=transactional_id,
    )
    try:
        yield started
    finally:
        await started.stop()
