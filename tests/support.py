"""Test support: an in-process Pôle (gateway and agencies as `maillage up` builds them) on the test broker."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from maillage.agency.app import create_app as create_agency_app
from maillage.agency.settings import AgencySettings
from maillage.core.config.settings import DEFAULT_NETWORK, ServiceSettings
from maillage.core.crypto.keys import GATEWAY, ensure_keys
from maillage.core.crypto.tokens import ALL_AGENCY_SCOPES, Scope, mint
from maillage.core.crypto.trust import Trust
from maillage.core.messaging import bus
from maillage.core.messaging.bus import Consumed
from maillage.core.messaging.envelope import Envelope
from maillage.core.messaging.topics import Topics
from maillage.core.polling import eventually
from maillage.core.storage.db import make_engine, session_factory
from maillage.core.storage.migrations import upgrade
from maillage.gateway.app import create_app as create_gateway_app
from maillage.gateway.crypto import CryptoThreads
from maillage.gateway.models import SCHEMA
from maillage.gateway.outgoing import Outgoing, Share
from maillage.gateway.services import Gateway
from maillage.gateway.settings import GatewaySettings


@asynccontextmanager
async def serving(app: FastAPI, *, token: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running; the client sends `token` as its bearer unless a test says otherwise."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(transport=transport, base_url="http://agency", headers=headers) as client:
            yield client


@dataclass
class Pole:
    bootstrap: str
    prefix: str
    data_dir: Path
    network_file: Path = DEFAULT_NETWORK
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)
    stack: AsyncExitStack = field(default_factory=AsyncExitStack)
    # A service's database URL (`gateway`, `agency-<id>`, `monitor`, `dispatcher`); None: SQLite in data_dir.
    databases: Callable[[str], str | None] = lambda _service: None

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.prefix)

    def common(self, service: str | None = None) -> dict[str, Any]:
        """Settings every service of this Pôle shares, and `service`'s database when it is not SQLite."""
        database = self.databases(service) if service else None
        return {
            "network_file": self.network_file,
            "kafka_bootstrap": self.bootstrap,
            "topic_prefix": self.prefix,
            "data_dir": self.data_dir,
            **({"database_url": database} if database else {}),
        }

    def database_url(self, service: str) -> str:
        """The URL `service` opens: its PostgreSQL database, or its SQLite file in the data directory."""
        return self.databases(service) or f"sqlite+aiosqlite:///{self.data_dir / f'{service}.db'}"

    def gateway_settings(self, **settings: Any) -> GatewaySettings:
        return GatewaySettings(**{**self.common("gateway"), "transactional_id": f"{self.prefix}gateway", **settings})

    def create_keys(self) -> None:
        settings = self.gateway_settings()
        ensure_keys(settings.key_dirs, settings.network.key_owners)

    def token(self, agency_id: str, scopes: tuple[Scope, ...] = ALL_AGENCY_SCOPES) -> str:
        """A token a partner system of `agency_id` would hold."""
        return mint(self.trust(agency_id).own, subject=f"{agency_id}-case-system", scopes=scopes)

    @property
    def operators(self) -> str:
        """The operators' issuer of the network: the only one whose tokens carry the monitor's scopes."""
        return self.gateway_settings().network.operators.issuer

    def scrape_token(self) -> str:
        """The bearer secret the services of this Pôle's data directory take at /metrics."""
        return self.gateway_settings().scrape_token()

    def trust(self, owner: str) -> Trust:
        """`owner`'s keys, as its own service holds them (to play a sender or forge one in tests)."""
        return Trust.load(self.gateway_settings().key_dirs, owner)

    async def create_topics(self) -> None:
        settings = self.gateway_settings()
        ids = [a.id for a in settings.network.agencies]
        await bus.ensure_topics(
            self.bootstrap, self.topics.all_for(ids), partitions=3, replication_factor=1, min_insync_replicas=1
        )

    async def start_gateway(self, **settings: Any) -> httpx.AsyncClient:
        return await self.stack.enter_async_context(serving(create_gateway_app(self.gateway_settings(**settings))))

    async def start_agency(self, agency_id: str, *, resolver: Any = None, **settings: Any) -> httpx.AsyncClient:
        chosen = {**self.common(f"agency-{agency_id}"), **settings}
        app = create_agency_app(AgencySettings(**chosen, agency_id=agency_id), resolver=resolver)
        client = await self.stack.enter_async_context(serving(app, token=self.token(agency_id)))
        self.clients[agency_id] = client
        return client

    def __getitem__(self, agency_id: str) -> httpx.AsyncClient:
        return self.clients[agency_id]

    async def read_topic(self, topic: str, *, expect: int, timeout: float = 20.0) -> list[Any]:
        """Every committed record of `topic`, read from the start until `expect` have come (or timeout)."""
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            enable_auto_commit=False,
        )
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

    async def read_until(self, topic: str, done: Callable[[list[Any]], bool], *, timeout: float = 20.0) -> list[Any]:
        """Every committed record of `topic` from the start, once `done(records)` holds *and* every partition
        has been read to its end: a marker record proves that what was written before it is all there."""
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            enable_auto_commit=False,
        )
        await consumer.start()
        records: list[Any] = []
        deadline = time.monotonic() + timeout

        async def more() -> None:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s reading {topic}")
            batches = await consumer.getmany(timeout_ms=200)
            records.extend(r for part in batches.values() for r in part)

        try:
            while not done(records) or not consumer.assignment():
                await more()
            ends = await consumer.end_offsets(list(consumer.assignment()))
            for tp, end in ends.items():
                while await consumer.position(tp) < end:
                    await more()
        finally:
            await consumer.stop()
        return records


@dataclass(frozen=True)
class Deciding:
    """The gateway's decisions without its Kafka loop: records of the submitted topic in, what it would publish
    out, as a batch read again after an aborted transaction would be decided."""

    gateway: Gateway
    crypto: CryptoThreads
    topic: str

    def records(self, envelopes: Sequence[Envelope], *, partition: int = 0) -> list[Consumed]:
        """The envelopes as one partition's records, from offset 0."""
        return [Consumed(self.topic, partition, offset, *e.to_kafka()) for offset, e in enumerate(envelopes)]

    async def process(self, records: Sequence[Consumed]) -> list[Outgoing | Share]:
        """One partition's batch decided (its audit records extend that partition's chain)."""
        return await self.gateway.process(await self.crypto.open(records), chain=records[0].partition)


@asynccontextmanager
async def deciding(pole: Pole) -> AsyncIterator[Deciding]:
    """The pole's gateway on its own database, deciding batches handed to it (no consumer, no transaction)."""
    settings = pole.gateway_settings()
    engine = make_engine(pole.database_url("gateway"))
    await upgrade(engine, SCHEMA)
    gateway = Gateway(
        network=settings.network, policy=settings.policy, topics=settings.topics, sessions=session_factory(engine)
    )
    await gateway.start()
    crypto = CryptoThreads(Trust.load(settings.key_dirs, GATEWAY))
    try:
        yield Deciding(gateway, crypto, settings.topics.submitted)
    finally:
        crypto.close()
        await engine.dispose()


def header_of(record: Any, name: str) -> str | None:
    return bus.header(list(record.headers), name)


def has_event(event_id: str) -> Callable[[list[Any]], bool]:
    """For `Pole.read_until`: true once a record of this event id has been read."""
    return lambda records: any(header_of(r, "ce_id") == event_id for r in records)


# --- the agency API, as a partner system uses it --------------------------------------------------------

# Every one of the eight categorised parts, with values a test can look for in what travels.
ALL_EIGHT: dict[str, Any] = {
    "identity": {"given_name": "Amina", "family_name": "Testperson", "national_number": "85010112345"},
    "contact": {"phone": "+32 470 12 34 56", "email": "amina@example.org"},
    "location": {"address": "Rue du Refuge 1, 4000 Liège", "municipality": "Liège", "in_shelter": True},
    "children": [{"given_name": "Noa", "birth_year": 2019, "lives_with_subject": True}],
    "risk": {"level": "severe", "factors": ["threats", "weapon"]},
    "judicial": {"protection_order": True, "case_reference": "LI.12.34.5678/26"},
    "health": {"notes": "Bruises on both arms, seen at the emergency ward."},
    "narrative": "Left home with her two children after he threatened her with a knife.",
}
CATEGORIES = list(ALL_EIGHT)
NOTICE_VERSION = "2026-09"  # the information notice a person receives before consenting


async def consent(
    pole: Pole,
    agency: str,
    subject_ref: str,
    *,
    to: list[str],
    categories: list[str],
    purposes: list[str] | None = None,
    disclosers: list[str] | None = None,
) -> dict[str, Any]:
    response = await pole[agency].post(
        "/v1/consents",
        json={
            "subject_ref": subject_ref,
            "categories": categories,
            "recipients": to,
            "purposes": purposes or ["referral"],
            "notice_version": NOTICE_VERSION,
            "notice_language": "fr",
            **({"disclosers": disclosers} if disclosers is not None else {}),
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def refer(
    pole: Pole, agency: str, subject_ref: str, *, to: str, role: str = "victim", data: dict[str, Any] | None = None
) -> str:
    response = await pole[agency].post(
        "/v1/referrals",
        json={
            "subject_ref": subject_ref,
            "subject_role": role,
            "recipient": to,
            "reason": "psychological_support",
            "data": data or ALL_EIGHT,
        },
    )
    assert response.status_code == 202, response.text
    return str(response.json()["event_id"])


async def received(pole: Pole, agency: str, event_id: str) -> dict[str, Any]:
    """The inbox item of this event at this agency, once it has arrived."""

    async def probe() -> dict[str, Any] | None:
        return next((i for i in await inbox_of(pole[agency]) if i["event_id"] == event_id), None)

    return await eventually(probe, what=f"{event_id} in {agency}'s inbox")


async def decided(pole: Pole, agency: str, event_id: str) -> dict[str, Any]:
    """What the gateway decided about an event `agency` sent, once it has."""
    return await eventually(lambda: fate(pole[agency], event_id), what=f"the fate of {event_id}")


def categories_in(data: dict[str, Any]) -> set[str]:
    """The categorised parts present in an inbox item's data (metadata fields left aside)."""
    return set(data) & set(CATEGORIES)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem body with the given status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"].startswith("https://") and body["title"] and body["status"] == status
    return body


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


# --- servers on a real port (WebSockets, streams, a browser) ---------------------------------------------


@dataclass
class Served:
    """A service on a real port: its base URL, and its app (to reach its state in a test)."""

    url: str
    app: Any


@asynccontextmanager
async def served_when_ready(
    app: Any, *, settings: ServiceSettings | None = None, **options: Any
) -> AsyncIterator[Served]:
    """`app` listening on a free port (uvicorn `options` as the service's command gives them), once its
    `/readyz` says so."""
    async with listening(app, settings=settings, **options) as url:
        async with httpx.AsyncClient(base_url=url) as client:

            async def ready() -> bool:
                return (await client.get("/readyz")).status_code == 200

            await eventually(ready, what=f"{url} to be ready")
        yield Served(url=url, app=app)


@asynccontextmanager
async def listening(
    app: Any, *, settings: ServiceSettings | None = None, port: int | None = None, **options: Any
) -> AsyncIterator[str]:
    """`app` served by uvicorn on `port` (a free one if None) of this machine, lifespan included, with the limits
    `maillage serve` gives it from `settings` (default: every service's defaults); yields its base URL."""
    import asyncio

    import uvicorn

    from maillage.cli.kafka_local import free_port
    from maillage.core.web.serving import uvicorn_options

    port = port or free_port()
    config = {
        "host": "127.0.0.1",
        "port": port,
        "lifespan": "on",
        "ws_ping_interval": None,
        **uvicorn_options(settings or ServiceSettings(), **options),
    }
    server = uvicorn.Server(uvicorn.Config(app, **config))
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: asyncio.sleep(0, server.started or task.done()), what="the server to listen")
        if task.done():
            task.result()
        yield f"{'https' if 'ssl_certfile' in config else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
