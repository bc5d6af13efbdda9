"""Consumer lag, read from the broker: for each consumer group of this network, how far behind it is."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from maillage.core.messaging.kafka_auth import KafkaAuth, client_kwargs


@dataclass(frozen=True)
class GroupLag:
    group: str
    topic: str
    lag: int  # records written but not yet consumed (committed offsets behind the last stable offset)
    partitions: int


async def consumer_lag(bootstrap: str, *, prefix: str, auth: KafkaAuth | None = None) -> list[GroupLag]:
    """Every group named `<prefix>maillage.*`, per topic it reads."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs(auth))
    # read_committed: the end of a partition is its last stable offset, as the services themselves read it.
    probe = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False, **client_kwargs(auth)
    )
    await admin.start()
    await probe.start()
    try:
        groups = sorted(g[0] for g in await admin.list_consumer_groups() if str(g[0]).startswith(f"{prefix}maillage."))
        committed = {group: await admin.list_consumer_group_offsets(group) for group in groups}
        partitions = {tp for offsets in committed.values() for tp in offsets}
        ends: dict[TopicPartition, int] = await probe.end_offsets(list(partitions)) if partitions else {}
    finally:
        await probe.stop()
        await admin.close()
    lags: list[GroupLag] = []
    for group in groups:
        per_topic: dict[str, list[int]] = defaultdict(list)
        for tp, meta in committed[group].items():
            if meta.offset >= 0:
                # A transaction's commit marker takes an offset of its own and is never "consumed".
                per_topic[tp.topic].append(max(0, ends.get(tp, meta.offset) - meta.offset))
        lags += [
            GroupLag(group=group, topic=topic, lag=sum(values), partitions=len(values))
            for topic, values in sorted(per_topic.items())
        ]
    return lags
