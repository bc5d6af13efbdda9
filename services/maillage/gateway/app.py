"""Composition root of the consent gateway: policy, consent state, transactional Kafka loop, audit and health API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from maillage.core.crypto.keys import GATEWAY
from maillage.core.crypto.tokens import GATEWAY_AUDIENCE
from maillage.core.crypto.trust import Trust, watch_keys
from maillage.core.lifecycle import TaskGroup
from maillage.core.messaging import bus
from maillage.core.storage.db import create_schema, make_engine, session_factory
from maillage.core.storage.private import keep_private
from maillage.core.web.http import install_common
from maillage.gateway import api
from maillage.gateway.handlers import TransactionalLoop
from maillage.gateway.models import TABLES
from maillage.gateway.services import Gateway
from maillage.gateway.settings import GatewaySettings


@asynccontextmanager
async def running_gateway(settings: GatewaySettings) -> AsyncIterator[TransactionalLoop]:
    """Everything the gateway needs, started; stopped cleanly on exit. Also used by the benchmark."""
    engine = make_engine(settings.db_url())
    await create_schema(engine, TABLES)
    gateway = Gateway(
        network=settings.network,
        policy=settings.policy,
        topics=settings.topics,
        sessions=session_factory(engine),
        trust=Trust.load(settings.key_dirs, GATEWAY),
    )
    await gateway.start()
    consumer = bus.consumer(
        settings.bootstrap, settings.topics.submitted, group_id=settings.group_id, auth=settings.kafka_auth
    )
    producer = bus.producer(settings.bootstrap, transactional_id=settings.transactional_id, auth=settings.kafka_auth)
    await producer.start()
    await consumer.start()
    try:
        yield TransactionalLoop(gateway, consumer, producer, group_id=settings.group_id)
    finally:
        await consumer.stop()
        await producer.stop()
        gateway.close()
        await engine.dispose()


def create_app(settings: GatewaySettings) -> FastAPI:
    keep_private(settings.data_dir)  # before anything is written: databases, secrets, logs
    tasks = TaskGroup()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_gateway(settings) as loop:
            tasks.start(loop.run(), name="gateway-loop")
            tasks.start(watch_keys([loop.gateway.trust], every=settings.key_refresh_seconds), name="keys")
            app.state.loop = loop
            app.state.trust = loop.gateway.trust
            app.state.sessions = loop.gateway.sessions
            app.state.network = settings.network
            try:
                yield
            finally:
                await tasks.stop()

    app = FastAPI(
        title="Maillage consent gateway",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        summary="Decides field by field what each recipient may receive, and audits it.",
    )

    async def ready() -> bool:
        loop: TransactionalLoop | None = getattr(app.state, "loop", None)
        return loop is not None and tasks.healthy and bool(loop.consumer.assignment())

    install_common(
        app,
        max_body_bytes=settings.max_body_bytes,
        audience=GATEWAY_AUDIENCE,
        scrape_token=settings.scrape_token(),
        ready=ready,
    )
    app.include_router(api.router)
    return app
