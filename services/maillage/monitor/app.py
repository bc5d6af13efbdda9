"""Composition root of the monitor: its database, a consumer of audit/status/dlq, lag polling → FastAPI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from maillage.core.clock import Clock, SystemClock
from maillage.core.crypto.tokens import MONITOR_AUDIENCE, Scope
from maillage.core.crypto.trust import PublicTrust
from maillage.core.lifecycle import running, service_app
from maillage.core.sessions.service import SignInSessions
from maillage.core.web.signin import session_router
from maillage.monitor import services
from maillage.monitor.api import router
from maillage.monitor.handlers import MonitorHandlers
from maillage.monitor.lag import LagWatch
from maillage.monitor.models import SCHEMA
from maillage.monitor.services import MonitorContext
from maillage.monitor.settings import MonitorSettings

COOKIE = "maillage_operator"  # the dashboard's session (the on-call page has its own: one host, two ports)


def create_app(settings: MonitorSettings, *, clock: Clock | None = None) -> FastAPI:
    topics = settings.topics
    agencies = [a.id for a in settings.network.agencies]
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(settings, schema=SCHEMA) as service:
            lag = LagWatch(
                settings.bootstrap,
                prefix=topics.prefix,
                auth=settings.kafka_auth,
                clock=clock,
                interval=settings.lag_interval_seconds,
            )
            ctx = MonitorContext(
                network=settings.network,
                topics=topics,
                sessions=service.sessions,
                producer=service.producer,
                bootstrap=settings.bootstrap,
                lag=lag,
                auth=settings.kafka_auth,
                clock=clock,
            )
            issuer = settings.network.operators.issuer
            # The operators' keys are in its own folder: it publishes them (an agency's tokens open nothing here).
            trust = PublicTrust.load(settings.key_dirs, remote=await service.key_source(own={issuer}))
            await service.consume(
                topics.audit,
                topics.oncall,
                *map(topics.status, agencies),
                *topics.dead_letter_topics(agencies),
                group_id=settings.group_id,
                handle=MonitorHandlers(ctx).handle,
                name="monitor",
            )
            service.tasks.start(lag.run(then=lambda: services.refresh_gauges(ctx)), name="lag")
            service.tasks.start(services.retention(ctx).run(clock), name="retention")
            service.watch_keys([trust])
            app.state.monitor = ctx
            app.state.trust = trust
            app.state.key_owners = (issuer,)
            app.state.signin_sessions = SignInSessions(
                service.sessions,
                trust=trust,
                audience=MONITOR_AUDIENCE,
                issuers=(issuer,),
                required=Scope.MONITOR_READ,
                granted=frozenset({Scope.MONITOR_READ, Scope.MONITOR_ACT}),
                lifetime=timedelta(hours=settings.operator_session_hours),
                cookie=COOKIE,
            )
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
    app.include_router(session_router(tags=["monitor"]))
    return app
