"""A producer whose batches cannot be delivered is stopped within its bound (`bus.stop_producer`): its batches fail
and their senders hear it, its background task ends and its connections close — it is not left retrying behind the
service's back after its stop was cut short (a cluster away, a gateway's partition producer renewed meanwhile)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiokafka.errors import KafkaError

from maillage.cli.kafka_local import LocalKafka
from maillage.core.messaging import bus

pytestmark = pytest.mark.integration

WITHIN = 1.0


async def test_a_producer_whose_batch_cannot_be_delivered_is_abandoned_within_its_bound(tmp_path: Path) -> None:
    broker = LocalKafka(data_dir=tmp_path / "kafka")  # its own: this test takes it away
    await asyncio.to_thread(broker.start)
    try:
        topic = "stop.check"
        await bus.ensure_topics(broker.bootstrap, [topic], partitions=1, replication_factor=1, min_insync_replicas=1)
        producer = bus.producer(broker.bootstrap)
        await producer.start()
        await producer.send_and_wait(topic, b"delivered", key=b"k")
        await asyncio.to_thread(broker.stop)  # the cluster away
        sent = await producer.send(topic, b"never delivered", key=b"k")

        began = time.monotonic()
        await bus.stop_producer(producer, within=WITHIN)
        took = time.monotonic() - began

        # Its sender hears of it now, not when the batch expires (`request_timeout_ms`, 30 s).
        with pytest.raises(KafkaError):
            await asyncio.wait_for(sent, timeout=1.0)
        await asyncio.sleep(0.1)  # the cancelled task's last turn
        assert took < WITHIN + 1.0
        assert producer._sender.sender_task.done()  # no longer retrying
        assert not any(connection.connected() for connection in producer.client._conns.values())
    finally:
        await asyncio.to_thread(broker.stop)
