"""Composition root of the consent gateway: policy, consent state, transactional Kafka loop, audit and health API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.clock import Clock
from maillage.core.crypto.keys import GATEWAY
from maillage.core.crypto.tokens import GATEWAY_AUDIENCE
from maillage.core.crypto.trust import Trust
from maillage.core.lifecycle import Running, running, service_app
from maillage.core.messaging import bus
from maillage.core.web.http import ReadinessCheck
from maillage.gateway import api
from maillage.gateway.crypto import CryptoThreads
from maillage.gateway.handlers import PartitionProducers, ProducerFactory, TransactionalLoop, partition_transactional_id
from maillage.gateway.models import SCHEMA
from maillage.gateway.services import Gateway, retention
from maillage.gateway.settings import GatewaySettings
from maillage.gateway.verification import Checkpoints, FullWalks


@asynccontextmanager
async def running_gateway(
    settings: GatewaySettings, *, serve: bool = True, clock: Clock | None = None
) -> AsyncIterator[GatewayRunning]:
    """Everything the gateway needs, started; stopped cleanly on exit. `serve`: run the transactional loop
    in the background (the benchmark drives it itself). `clock`: the system's unless a test gives its own."""
    async with running(settings, schema=SCHEMA) as service:
        trust = Trust.load(settings.key_dirs, GATEWAY, remote=await service.key_source(own={GATEWAY}))
        gateway = Gateway(
            network=settings.network,
            policy=settings.policy,
            topics=settings.topics,
            sessions=service.sessions,
            clock=clock,
        )
        await gateway.start()
        producers = PartitionProducers(_partition_producer(settings), on_assigned=gateway.start)
        consumer = await _consumer(settings, producers, service=service)
        crypto = CryptoThreads(trust)
        loop = TransactionalLoop(gateway, consumer, producers, crypto=crypto, group_id=settings.group_id)
        walks = FullWalks(service.sessions, Checkpoints(trust))
        if serve:
            service.tasks.start(loop.run(), name="gateway-loop")
            service.tasks.start(walks.every(timedelta(hours=settings.audit_full_walk_hours)), name="audit-walks")
            purge = retention(service.sessions, settings.network)
            service.tasks.start(purge.run(gateway.clock), name="retention")
            service.watch_keys([trust])
        try:
            ready = _deciding(service.ready(), producers)
            yield GatewayRunning(loop=loop, trust=trust, sessions=service.sessions, ready=ready, walks=walks)
        finally:
            await walks.close()
            await service.tasks.stop()  # the loop first, then the threads it hands crypto to
            crypto.close()
            await producers.stop()


def _deciding(check: ReadinessCheck, producers: PartitionProducers) -> ReadinessCheck:
    """Ready once it decides partitions of its own: assigned, their previous owners fenced."""

    async def ready() -> bool:
        return producers.deciding and await check()

    return ready


def _partition_producer(settings: GatewaySettings) -> ProducerFactory:
    def make(partition: int) -> AIOKafkaProducer:
        transactional_id = partition_transactional_id(settings.transactional_prefix, partition)
        return bus.producer(settings.bootstrap, transactional_id=transactional_id, auth=settings.kafka_auth)

    return make


async def _consumer(settings: GatewaySettings, producers: PartitionProducers, *, service: Running) -> AIOKafkaConsumer:
    """The submitted topic's consumer in the gateways' group, its rebalances heard by `producers`; stopped and
    checked for readiness with the service's own."""
    consumer = bus.consumer(
        settings.bootstrap,
        settings.topics.submitted,
        group_id=settings.group_id,
        auth=settings.kafka_auth,
        listener=producers,
    )
    producers.consumer = consumer
    await consumer.start()
    service.consumers.append(consumer)
    return consumer


@dataclass(frozen=True)
class GatewayRunning:
    loop: TransactionalLoop
    trust: Trust
    sessions: async_sessionmaker[AsyncSession]
    ready: ReadinessCheck
    walks: FullWalks


def create_app(settings: GatewaySettings, *, clock: Clock | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_gateway(settings, clock=clock) as started:
            app.state.trust = started.trust
            app.state.sessions = started.sessions
            app.state.network = settings.network
            app.state.ready = started.ready
            app.state.walks = started.walks
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
