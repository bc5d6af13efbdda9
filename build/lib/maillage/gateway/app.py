"""Composition root of the consent gateway: policy, consent state, transactional Kafka loop, audit and health API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from maillage.core.crypto.keys import GATEWAY
from maillage.core.crypto.tokens import GATEWAY_AUDIENCE
from maillage.core.crypto.trust import Trust
from maillage.core.lifecycle import running, service_app
from maillage.core.web.http import ReadinessCheck
from maillage.gateway import api
from maillage.gateway.handlers import TransactionalLoop
from maillage.gateway.models import TABLES
from maillage.gateway.services import Gateway
from maillage.gateway.settings import GatewaySettings


@asynccontextmanager
async def running_gateway(settings: GatewaySettings, *, serve: bool = True) -> AsyncIterator[GatewayRunning]:
    """Everything the gateway needs, started; stopped cleanly on exit. `serve`: run the transactional loop
    in the background (the benchmark drives it itself)."""
    async with running(settings, tables=TABLES, transactional_id=settings.transactional_id) as service:
        gateway = Gateway(
            network=settings.network,
            policy=settings.policy,
            topics=settings.topics,
            sessions=service.sessions,
            trust=Trust.load(settings.key_dirs, GATEWAY),
        )
        await gateway.start()
        consumer = await service.consumer(settings.topics.submitted, group_id=settings.group_id)
        loop = TransactionalLoop(gateway, consumer, service.producer, group_id=settings.group_id)
        if serve:
            service.tasks.start(loop.run(), name="gateway-loop")
            service.watch_keys([gateway.trust])
        try:
            yield GatewayRunning(loop=loop, ready=service.ready())
        finally:
            await service.tasks.stop()  # the loop first, then the threads it hands crypto to
            gateway.close()


@dataclass(frozen=True)
class GatewayRunning:
    loop: TransactionalLoop
    ready: ReadinessCheck


def create_app(settings: GatewaySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_gateway(settings) as started:
            app.state.trust = started.loop.gateway.trust
            app.state.sessions = started.loop.gateway.sessions
            app.state.network = settings.network
            app.state.ready = started.ready
            yield

    app = service_app(
        settings,
        title="Maillage consent gateway",
        summary="Decides field by field what each recipient may receive, and audits it.",
        audience=GATEWAY_AUDIENCE,
        lifespan=lifespan,
    )
    app.include_router(api.router)
    return app
