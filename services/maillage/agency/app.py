"""Composition root of one agency service: settings → engine, Kafka clients, relay, consumer → FastAPI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from maillage.agency import clients, services
from maillage.agency.api import oauth, router
from maillage.agency.handlers import AgencyHandlers
from maillage.agency.models import SCHEMA
from maillage.agency.sending import AgencyContext
from maillage.agency.settings import AgencySettings
from maillage.core.clock import Clock, SystemClock
from maillage.core.crypto.tokens import agency_audience
from maillage.core.crypto.trust import Trust
from maillage.core.lifecycle import running, service_app
from maillage.core.outbox.relay import OutboxRelay
from maillage.core.webhooks.delivery import WebhookDispatcher
from maillage.core.webhooks.egress import EgressPolicy, Resolver


def create_app(settings: AgencySettings, *, resolver: Resolver | None = None, clock: Clock | None = None) -> FastAPI:
    """`resolver` turns webhook hosts into addresses (default: the machine's; tests give a table of their own);
    `clock` paces the retention purge and stamps what the agency stores (default: the system's)."""
    agency = settings.network.agency(settings.agency_id)
    topics = settings.topics
    egress = EgressPolicy.from_network(settings.network.webhooks, resolver=resolver)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(settings, schema=SCHEMA) as service:
            trust = Trust.load(settings.key_dirs, agency.id, remote=await service.key_source(own={agency.id}))
            relay = OutboxRelay(
                service.sessions, service.producer, signers={agency.id: trust}, name=f"agency:{agency.id}"
            )
            ctx = AgencyContext(
                agency=agency,
                network=settings.network,
                topics=topics,
                sessions=service.sessions,
                relay=relay,
                trust=trust,
                egress=egress,
                webhook_max_lifetime=timedelta(days=settings.webhook_max_lifetime_days),
                clock=clock or SystemClock(),
            )
            webhooks = WebhookDispatcher(
                service.sessions,
                clock=ctx.clock,
                egress=egress,
                backoff_base=settings.webhook_backoff_seconds,
                attempt_seconds=settings.webhook_attempt_seconds,
                concurrency=settings.webhook_concurrency,
            )
            handlers = AgencyHandlers(ctx, on_inbox=webhooks.notify)
            service.tasks.start(relay.run(), name="outbox-relay")
            service.tasks.start(webhooks.run(), name="webhooks")
            service.tasks.start(services.retention(ctx).run(ctx.clock), name="retention")
            await service.consume(
                topics.deliver(agency.id),
                topics.status(agency.id),
                group_id=f"{topics.prefix}maillage.agency.{agency.id}",
                handle=handlers.handle,
                name="deliveries",
            )
            service.watch_keys([ctx.trust])
            app.state.context = ctx
            app.state.tokens = clients.token_endpoint(service.sessions, ctx.trust)
            app.state.trust = ctx.trust
            app.state.ready = service.ready()
            yield

    app = service_app(
        settings,
        title=f"Maillage agency service — {agency.name}",
        summary="Consented referrals and safety alerts between agencies, through the consent gateway.",
        audience=agency_audience(agency.id),
        lifespan=lifespan,
    )
    app.include_router(router)
    app.include_router(oauth)
    return app
