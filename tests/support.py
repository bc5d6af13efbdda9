"""Test support: an in-process Pôle (gateway and agencies as `maillage up` builds them) on the session's broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from maillage.agency.app import create_app as create_agency_app
from maillage.agency.settings import AgencySettings
from maillage.core import bus
from maillage.core.settings import DEFAULT_NETWORK
from maillage.core.topics import Topics
from maillage.gateway.app import create_app as create_gateway_app
from maillage.gateway.settings import GatewaySettings

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T | None]], *, timeout: float = 20.0,
                     what: str = "condition") -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://agency") as client:
            yield client


@dataclass
class Pole:
    bootstrap: str
    prefix: str
    data_dir: Path
    network_file: Path = DEFAULT_NETWORK
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)
    stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.prefix)

    def common(self) -> dict[str, Any]:
        return {"network_file": self.network_file, "kafka_bootstrap": self.bootstrap,
                "topic_prefix": self.prefix, "data_dir": self.data_dir}

    def gateway_settings(self) -> GatewaySettings:
        return GatewaySettings(**self.common(), transactional_id=f"{self.prefix}gateway")

    async def create_topics(self) -> None:
        settings = self.gateway_settings()
        ids = [a.id for a in settings.network.agencies]
        await bus.ensure_topics(self.bootstrap, self.topics.all_for(ids), partitions=3,
                                replication_factor=1, min_insync_replicas=1)

    async def start_gateway(self) -> httpx.AsyncClient:
        return await self.stack.enter_async_context(serving(create_gateway_app(self.gateway_settings())))

    async def start_agency(self, agency_id: str) -> httpx.AsyncClient:
        app = create_agency_app(AgencySettings(**self.common(), agency_id=agency_id))
        client = await self.stack.enter_async_context(serving(app))
        self.clients[agency_id] = client
        return client

    def __getitem__(self, agency_id: str) -> httpx.AsyncClient:
        return self.clients[agency_id]

    async def read_topic(self, topic: str, *, expect: int, timeout: float = 20.0) -> list[Any]:
        """Every committed record of `topic`, read from the start until `expect` have come (or timeout)."""
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=self.bootstrap, auto_offset_reset="earliest",
                                    isolation_level="read_committed", enable_auto_commit=False)
        await consumer.start()
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        try:
            while len(records) < expect and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=300)
                records.extend(r for part in batches.values() for r in part)
        finally:
            await consumer.stop()
        return records


async def inbox_of(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/inbox", params=params)).json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def fate(client: httpx.AsyncClient, event_id: str) -> dict[str, Any] | None:
    body = (await client.get(f"/v1/events/{event_id}")).json()
    return body if body["state"] != "pending" else None
