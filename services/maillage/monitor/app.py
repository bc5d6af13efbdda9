"""Composition root of the monitor: its database, a consumer of audit/status/dlq, lag polling → FastAPI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from maillage.core.crypto.tokens import MONITOR_AUDIENCE
from maillage.core.crypto.trust import PublicTrust, watch_keys
from maillage.core.lifecycle import TaskGroup, readiness, shut_down
from maillage.core.messaging import bus
from maillage.core.storage.db import create_schema, make_engine, session_factory
from maillage.core.storage.private import keep_private
from maillage.core.web.http import install_common
from maillage.monitor.api import router
from maillage.monitor.ingest import Ingest
from maillage.monitor.models import TABLES
from maillage.monitor.service import Monitor
from maillage.monitor.settings import MonitorSettings


def create_app(settings: MonitorSettings) -> FastAPI:
    keep_private(settings.data_dir)  # before anything is written: databases, secrets, logs
    topics = settings.topics

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.db_url())
        await create_schema(engine, TABLES)
        sessions = session_factory(engine)
        producer = bus.producer(settings.bootstrap, auth=settings.kafka_auth)
        await producer.start()
        monitor = Monitor(
            network=settings.network,
            topics=topics,
            sessions=sessions,
            bootstrap=settings.bootstrap,
            producer=producer,
            auth=settings.kafka_auth,
            lag_interval=settings.lag_interval_seconds,
        )
        agencies = [a.id for a in settings.network.agencies]
        consumer = bus.consumer(
            settings.bootstrap,
            topics.audit,
            topics.oncall,
            *map(topics.status, agencies),
            *topics.dead_letter_topics(agencies),
            group_id=settings.group_id,
            auth=settings.kafka_auth,
        )
        await consumer.start()
        ingest = Ingest(sessions, topics)
        trust = PublicTrust.load(settings.key_dirs)

        async def handle(records: list) -> None:  # type: ignore[type-arg]
            await ingest.handle(records)
            monitor.refresh_gauges_soon()

        tasks = TaskGroup()
        tasks.start(bus.consume_forever(consumer, handle, name="monitor"), name="monitor")
        tasks.start(monitor.watch(), name="lag")
        tasks.start(watch_keys([trust], every=settings.key_refresh_seconds), name="keys")

        app.state.monitor = monitor
        app.state.trust = trust
        app.state.key_owners = ()
        app.state.ready = readiness(engine, tasks, consumer)
        try:
            yield
        finally:
            await shut_down(tasks, consumer, producer, engine)

    app = FastAPI(
        title="Maillage monitor",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        summary="The flow of events for operators: decisions, lag, dead letters, reviews — never content.",
    )

    install_common(
        app, max_body_bytes=settings.max_body_bytes, audience=MONITOR_AUDIENCE, scrape_token=settings.scrape_token()
    )
    app.include_router(router)
    return app
