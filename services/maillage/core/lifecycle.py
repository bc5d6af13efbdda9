"""A service's life: the FastAPI app every service is, what its lifespan starts, and the order it stops in."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.config.settings import ServiceSettings
from maillage.core.crypto.jwks import JwksSource
from maillage.core.crypto.trust import PublicTrust, Trust, watch_keys
from maillage.core.messaging import bus
from maillage.core.storage.db import make_engine, session_factory
from maillage.core.storage.migrations import Schema, upgrade
from maillage.core.storage.private import keep_private
from maillage.core.storage.repository import answers
from maillage.core.web.http import ReadinessCheck, install_common

log = logging.getLogger(__name__)

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

# How long each step of a service's stop may take: one that cannot finish is given up and logged, not awaited forever.
STOP_SECONDS = 5.0


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
        keys_max_age=int(settings.key_refresh_seconds),
    )
    return app


@dataclass
class TaskFailures:
    """The process's answer to a background task stopped by an error (its loop, a consumer, an outbox relay):
    the service could no longer do its work and would only answer 503 on /readyz. In a process `serve` runs,
    `stop` ends the server — gracefully, then with a non-zero status, so that its supervisor (`maillage up`,
    Compose, systemd) starts it afresh, crash-only; in a test's process (no `stop`), it is logged only."""

    stop: Callable[[], None] | None = None
    failed: str | None = None  # the first task that stopped by an error

    def report(self, name: str) -> None:
        if self.failed is None:
            self.failed = name
        if self.stop is not None:
            log.critical("a background task stopped: the service stops, to be started afresh", extra={"task": name})
            self.stop()


TASK_FAILURES = TaskFailures()


class TaskGroup:
    """Background tasks owned by a service's lifespan: started together, cancelled together."""

    def __init__(self, failures: TaskFailures = TASK_FAILURES) -> None:
        self._tasks: list[asyncio.Task[None]] = []
        self._failures = failures
        self._stopping = False  # from then on a task ending with an error is part of the stop, not a failure

    def start(self, coro: Coroutine[Any, Any, None], *, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._report)
        self._tasks.append(task)

    def _report(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "background task stopped", extra={"task": task.get_name(), "error": type(task.exception()).__name__}
            )
            if not self._stopping:
                self._failures.report(task.get_name())

    @property
    def healthy(self) -> bool:
        return all(not t.done() for t in self._tasks)

    async def stop(self, *, within: float = STOP_SECONDS) -> None:
        """Cancel every task and wait `within` seconds at most: a task that ignores its cancellation is named in
        the log and left behind, never waited for without end (the service's stop would hang with it)."""
        self._stopping = True
        pending = [task for task in self._tasks if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            _, stuck = await asyncio.wait(pending, timeout=within)
            for task in stuck:
                log.error("background task did not stop", extra={"task": task.get_name(), "seconds": within})


@dataclass
class Running:
    """What a service's lifespan has started: its database, its Kafka clients, its background tasks."""

    settings: ServiceSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    producer: bus.ProducerSlot  # started on first use, replaced after a failed send
    tasks: TaskGroup = field(default_factory=TaskGroup)
    consumers: list[AIOKafkaConsumer] = field(default_factory=list)
    closing: list[Callable[[], None]] = field(default_factory=list)

    async def consumer(self, *topics: str, group_id: str) -> AIOKafkaConsumer:
        """A started consumer of `topics` in `group_id`, stopped with the service."""
        consumer = bus.consumer(self.settings.bootstrap, *topics, group_id=group_id, auth=self.settings.kafka_auth)
        await consumer.start()
        self.consumers.append(consumer)
        return consumer

    async def consume(self, *topics: str, group_id: str, handle: bus.BatchHandler, name: str) -> None:
        """Hand every batch of `topics` to `handle` at least once, then commit its offsets (bus.consume_forever)."""
        consumer = await self.consumer(*topics, group_id=group_id)
        self.tasks.start(bus.consume_forever(consumer, handle, name=name), name=name)

    async def key_source(self, *, own: Collection[str] = ()) -> JwksSource | None:
        """The other owners' keys from their JWKS URLs, if the network file names any, fetched once (in a
        thread: a server not up yet takes its timeout) before the service loads its trust; closed with it."""
        source = self.settings.key_source(own=own)
        if source is not None:
            self.closing.append(source.close)
            await asyncio.to_thread(source.refresh)
        return source

    def watch_keys(self, trusts: Sequence[Trust | PublicTrust], *, on_change: Callable[[], None] | None = None) -> None:
        """Reload the keys every `key_refresh_seconds`: a retired key is refused within that bound."""
        self.tasks.start(watch_keys(trusts, every=self.settings.key_refresh_seconds, on_change=on_change), name="keys")

    def ready(self) -> Callable[[], Awaitable[bool]]:
        """Ready: the database answers, every background task runs, and every consumer has its partitions."""

        async def check() -> bool:
            return await answers(self.engine) and self.tasks.healthy and all(c.assignment() for c in self.consumers)

        return check

    async def stop(self) -> None:
        """In order: the background work first, then Kafka, then the database; each step bounded, so that one
        that cannot finish (a broker away, a connection that never answers) delays the others, never stops them."""
        await self.tasks.stop()
        for consumer in self.consumers:
            await bounded(consumer.stop(), what="consumer")
        await bounded(self.producer.stop(), what="producer")
        await bounded(self.engine.dispose(), what="database")
        for close in self.closing:
            close()


YOUNG_COLLECTION = 50_000


def settle_heap() -> None:
    """Once a process has started to serve: what it made to start — modules, classes, its app and clients,
    160,000 to 200,000 objects — is taken out of the garbage collector's sight (`gc.freeze`). Each collection of
    the oldest generation walked all of it: 100-150 ms of CPU on the 2-core machine, once every 10-20 s under
    load, and that long a stall of the process's event loop, the requests it was serving waiting meanwhile
    (README "A lean pipeline", tenth round); 2-3 ms once frozen. What startup made lives as long as the process
    anyway. Only for a process serving one service: a test process starting many would keep their garbage.

    And the youngest generation is collected once `YOUNG_COLLECTION` more containers live than at its last
    collection, not 700: a batch's records, events, rows and outputs live until the batch ends (some seventy
    containers per event in the gateway), so at 700 a batch of 500 was walked again and again, promoted, and walked
    again in the older generations — 22 µs of the gateway's ~330 per event, 1.5 at 50,000; what dies young is
    freed by its reference count either way (README "A lean pipeline", fifteenth round)."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION, middle, oldest)


async def bounded(step: Awaitable[None], *, what: str, within: float = STOP_SECONDS) -> None:
    try:
        async with asyncio.timeout(within):
            await step
    except TimeoutError:
        log.error("stop step cut short", extra={"step": what, "seconds": within})


@asynccontextmanager
async def running(settings: ServiceSettings, *, schema: Schema) -> AsyncIterator[Running]:
    """The service's database (brought to its latest revision) and its producer (started when first used); all
    stopped on exit."""
    engine = make_engine(settings.db_url())
    await upgrade(engine, schema)
    producer = bus.ProducerSlot(lambda: bus.producer(settings.bootstrap, auth=settings.kafka_auth))
    started = Running(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        producer=producer,
    )
    try:
        yield started
    finally:
        await started.stop()
