"""Composition root of one agency service: settings → engine, Kafka clients, relay, consumer → FastAPI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from maillage.agency.api import router
from maillage.agency.handlers import AgencyHandlers
from maillage.agency.models import TABLES
from maillage.agency.services import AgencyContext
from maillage.agency.settings import AgencySettings
from maillage.core.crypto.tokens import agency_audience
from maillage.core.crypto.trust import Trust, watch_keys
from maillage.core.lifecycle import TaskGroup, readiness, shut_down
from maillage.core.messaging import bus
from maillage.core.messaging.outbox import OutboxRelay
from maillage.core.storage.db import create_schema, make_engine, session_factory
from maillage.core.storage.private import keep_private
from maillage.core.web.egress import EgressPolicy, Resolver
from maillage.core.web.http import install_common
from maillage.core.web.webhooks import WebhookDispatcher


def create_app(settings: AgencySettings, *, resolver: Resolver | None = None) -> FastAPI:
    """`resolver` turns webhook hosts into addresses (default: the machine's; tests give a table of their own)."""
    keep_private(settings.data_dir)  # before anything is written: databases, secrets, logs
    agency = settings.network.agency(settings.agency_id)
    topics = settings.topics
    egress = EgressPolicy.from_network(settings.network.webhooks, resolver=resolver)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.db_url())
        await create_schema(engine, TABLES)
        sessions = session_factory(engine)
        producer = bus.producer(settings.bootstrap, auth=settings.kafka_auth)
        await producer.start()
        relay = OutboxRelay(sessions, producer, name=f"agency:{agency.id}")
        ctx = AgencyContext(
            agency=agency,
            network=settings.network,
            topics=topics,
            sessions=sessions,
            relay=relay,
            trust=Trust.load(settings.key_dirs, agency.id),
            egress=egress,
            webhook_max_lifetime=timedelta(days=settings.webhook_max_lifetime_days),
        )
        consumer = bus.consumer(
            settings.bootstrap,
            topics.deliver(agency.id),
            topics.status(agency.id),
            group_id=f"{topics.prefix}maillage.agency.{agency.id}",
            auth=settings.kafka_auth,
        )
        await consumer.start()
        webhooks = WebhookDispatcher(
            sessions,
            clock=ctx.clock,
            egress=egress,
            backoff_base=settings.webhook_backoff_seconds,
            attempt_seconds=settings.webhook_attempt_seconds,
            concurrency=settings.webhook_concurrency,
        )
        handlers = AgencyHandlers(ctx, producer, on_inbox=webhooks.notify)
        tasks = TaskGroup()
        tasks.start(relay.run(), name="outbox-relay")
        tasks.start(webhooks.run(), name="webhooks")
        tasks.start(bus.consume_forever(consumer, handlers.handle, name="deliveries"), name="deliveries")
        tasks.start(watch_keys([ctx.trust], every=settings.key_refresh_seconds), name="keys")

        app.state.context = ctx
        app.state.trust = ctx.trust
        app.state.ready = readiness(engine, tasks, consumer)
        try:
            yield
        finally:
            await shut_down(tasks, consumer, producer, engine)

    app = FastAPI(
        title=f"Maillage agency service — {agency.name}",
        version="1",
        summary="Consented referrals and safety alerts between agencies, through the consent gateway.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )

    install_common(
        app,
        max_body_bytes=settings.max_body_bytes,
        audience=agency_audience(agency.id),
        scrape_token=settings.scrape_token(),
    )
    app.include_router(router)
    return app
