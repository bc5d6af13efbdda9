"""Consumer lag, read from the broker: for each consumer group of this network, how far behind it is."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from maillage.core.clock import Clock
from maillage.core.messaging.kafka_auth import KafkaAuth, client_kwargs
from maillage.core.observability.metrics import CONSUMER_LAG
from maillage.core.polling import wait_set

log = logging.getLogger(__name__)


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
    try:  # stopped whatever happens, a start that failed (the broker away) too: nothing left unclosed
        await admin.start()
        await probe.start()
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


class LagWatch:
    """The last consumer lag read from the broker, read again every `interval`, or sooner when asked."""

    def __init__(
        self, bootstrap: str, *, prefix: str, auth: KafkaAuth | None, clock: Clock, interval: float = 5.0
    ) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.auth = auth
        self.clock = clock
        self.interval = interval
        self.groups: list[GroupLag] = []
        self.measured_at: datetime | None = None
        self._wake = asyncio.Event()

    def measure_soon(self) -> None:
        self._wake.set()

    async def run(self, *, then: Callable[[], Awaitable[None]]) -> None:
        """Measure, then `then` (the gauges operators alert on), forever."""
        while True:
            try:
                await self.measure()
                await then()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker away for a while: keep the last figures, try again
                log.warning("lag not read", extra={"error": type(exc).__name__})
            # A polling cadence, not a deadline of the domain: it follows the wall clock.
            await wait_set(self._wake, timeout=self.interval)
            self._wake.clear()

    async def measure(self) -> None:
        self.groups = await consumer_lag(self.bootstrap, prefix=self.prefix, auth=self.auth)
        self.measured_at = self.clock.now()
        for g in self.groups:
            CONSUMER_LAG.labels(g.group.removeprefix(self.prefix), g.topic.removeprefix(self.prefix)).set(g.lag)
