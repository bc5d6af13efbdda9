"""The bench's Kafka topics (fresh ones per run, under their own prefix) and its plain producer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from maillage.core.config.network import Network
from maillage.core.messaging import bus
from maillage.core.messaging.topics import Topics


async def create_topics(
    bootstrap: str, network: Network, topics: Topics, *, extra: tuple[str, ...] = (), partitions: int | None = None
) -> None:
    """The network's topics under the run's prefix (and `extra` ones), each with the network's partitions unless
    `partitions` is given."""
    k = network.kafka
    configs = network.topic_configs(topics)
    await bus.ensure_topics(
        bootstrap,
        [*configs, *extra],
        partitions=partitions or k.partitions,
        replication_factor=k.replication_factor,
        min_insync_replicas=k.min_insync_replicas,
        configs=configs,
    )


async def delete_topics(bootstrap: str, *, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        ours = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


@asynccontextmanager
async def producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    started = bus.producer(bootstrap)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()
