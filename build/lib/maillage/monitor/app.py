"""Composition root of the monitor: its database, a consumer of audit/status/dlq, lag polling → FastAPI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from maillage.core.crypto.tokens import MONITOR_AUDIENCE
from maillage.core.crypto.trust import PublicTrust
from maillage.core.lifecycle import running, service_app
from maillage.core.messaging.bus import Record
from maillage.monitor.api import router
from maillage.monitor.ingest import Ingest
from maillage.monitor.models import TABLES
from maillage.monitor.service import Monitor
from maillage.monitor.settings import MonitorSettings


def create_app(settings: MonitorSettings) -> FastAPI:
    topics = settings.topics
    agencies = [a.id for a in settings.network.agencies]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(settings, tables=TABLES) as service:
            monitor = Monitor(
                network=settings.network,
                topics=topics,
                sessions=service.sessions,
                bootstrap=settings.bootstrap,
                producer=service.producer,
                auth=settings.kafka_auth,
                lag_interval=settings.lag_interval_seconds,
            )
            ingest = Ingest(service.sessions, topics)
            trust = PublicTrust.load(settings.key_dirs)

            async def handle(records: list[Record]) -> None:
                await ingest.handle(records)
                monitor.refresh_gauges_soon()

            await service.consume(
                topics.audit,
                topics.oncall,
                *map(topics.status, agencies),
                *topics.dead_letter_topics(agencies),
                group_id=settings.group_id,
                handle=handle,
                name="monitor",
            )
            service.tasks.start(monitor.watch(), name="lag")
            service.watch_keys([trust])
            app.state.monitor = monitor
            app.state.trust = trust
            app.state.key_owners = ()
            app.state.ready = service.ready()
            yield

    app = service_app(
        settings,
        title="Maillage monitor",
        summary="The flow of events for operators: decisions, lag, dead letters, reviews — never content.",
        audience=MONITOR_AUDIENCE,
        lifespan=lifespan,
    )
    app.include_router(router)
    return app
