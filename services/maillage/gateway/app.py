"""Composition root of the consent gateway: policy, consent state, transactional Kafka loop, audit and health API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.crypto.keys import GATEWAY
from maillage.core.crypto.tokens import GATEWAY_AUDIENCE
from maillage.core.crypto.trust import Trust
from maillage.core.lifecycle import running, service_app
from maillage.core.web.http import ReadinessCheck
from maillage.gateway import api
from maillage.gateway.crypto import CryptoThreads
from maillage.gateway.handlers import TransactionalLoop
from maillage.gateway.models import TABLES
from maillage.gateway.services import Gateway
from maillage.gateway.settings import GatewaySettings


@asynccontextmanager
async def running_gateway(settings: GatewaySettings, *, serve: bool = True) -> AsyncIterator[GatewayRunning]:
    """Everything the gateway needs, started; stopped cleanly on exit. `serve`: run the transactional loop
    in the background (the benchmark drives it itself)."""
    async with running(settings, tables=TABLES, transactional_id=settings.transactional_id) as service:
        trust = Trust.load(settings.key_dirs, GATEWAY)
        gateway = Gateway(
            network=settings.network, policy=settings.policy, topics=settings.topics, sessions=service.sessions
        )
        await gateway.start()
        consumer = await service.consumer(settings.topics.submitted, group_id=settings.group_id)
        crypto = CryptoThreads(trust)
        loop = TransactionalLoop(
            gateway,
            consumer,
            service.producer,
            crypto=crypto,
            group_id=settings.group_id,
            renew=service.renew_producer,
        )
        if serve:
            service.tasks.start(loop.run(), name="gateway-loop")
            service.watch_keys([trust])
        try:
            yield GatewayRunning(loop=loop, trust=trust, sessions=service.sessions, ready=service.ready())
        finally:
            await service.tasks.stop()  # the loop first, then the threads it hands crypto to
            crypto.close()


@dataclass(frozen=True)
class GatewayRunning:
    loop: TransactionalLoop
    trust: Trust
    sessions: async_sessionmaker[AsyncSession]
    ready: ReadinessCheck


def create_app(settings: GatewaySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_gateway(settings) as started:
            app.state.trust = started.trust
            app.state.sessions = started.sessions
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
