"""One real Kafka broker for the whole session; a fresh topic prefix and data directory per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from maillage.cli.kafka_local import LocalKafka
from tests.support import Pole


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("MAILLAGE_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    broker = LocalKafka(data_dir=tmp_path_factory.mktemp("kafka"))
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
async def producer(pole: Pole) -> AsyncIterator[AIOKafkaProducer]:
    """A plain client of the test broker: what a misbehaving sender, or an agency's compromised principal,
    writes straight onto a topic."""
    client = AIOKafkaProducer(bootstrap_servers=pole.bootstrap, acks="all", enable_idempotence=True)
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


@pytest.fixture
async def pole(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> AsyncIterator[Pole]:
    """The demo network's topics under a unique prefix; tests start the gateway and the agencies they need."""
    network = Pole(bootstrap=kafka_bootstrap, prefix=topic_prefix, data_dir=tmp_path / "var")
    network.create_keys()
    await network.create_topics()
    async with network.stack:
        yield network
