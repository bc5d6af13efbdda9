"""When each event's record was handed to its producer: the CreateTime Kafka keeps with every record (the
producer's clock, this machine's), read back by event id after a run. It splits a hop the services' own
timestamps leave whole: the outbox relay's send apart from the sender's commit, the gateway's publication
apart from the recipient's store."""

from __future__ import annotations

import time
from collections.abc import Collection
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer

from maillage.core.messaging import bus


async def sent_at(bootstrap: str, topic: str, ids: Collection[str], *, within: float = 60.0) -> dict[str, datetime]:
    """event id (`ce_id`) → its record's CreateTime, for the records of `topic` whose id is in `ids` (the first
    record of each: a copy sent again keeps the first); the whole topic read, transactions' aborted records
    too (a producer's send time is what is asked)."""
    wanted = set(ids)
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: dict[str, datetime] = {}
    deadline = time.monotonic() + within

    async def more() -> None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{topic} not read to its end within {within:g} s")
        for records in (await consumer.getmany(timeout_ms=200)).values():
            for record in records:
                event_id = bus.header(list(record.headers), "ce_id")
                if event_id in wanted and event_id not in found:
                    found[event_id] = datetime.fromtimestamp(record.timestamp / 1000, tz=UTC)

    try:
        while not consumer.assignment():
            await more()
        ends = await consumer.end_offsets(list(consumer.assignment()))
        for tp, end in ends.items():
            while await consumer.position(tp) < end:
                await more()
        return found
    finally:
        await consumer.stop()
