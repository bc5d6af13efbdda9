"""Two processes of one agency on one database: each webhook delivery is sent once, not once by each."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, col, func, select

from maillage.core.clock import SystemClock
from maillage.core.storage.db import make_engine, session_factory, unit_of_work, writer
from maillage.core.webhooks.delivery import WebhookDispatcher
from maillage.core.webhooks.egress import Destination, EgressPolicy, TableResolver
from maillage.core.webhooks.models import Webhook, WebhookAttempt, WebhookDelivery
from tests.webhooks import LOOPBACK, Receiver, bound_socket, make_certificates, port_of, serve_https

pytestmark = [pytest.mark.integration, pytest.mark.postgresql]

DELIVERIES = 40


async def test_two_dispatchers_on_one_database_send_each_delivery_once(
    databases: Callable[[str], str | None], tmp_path: Path
) -> None:
    url = databases("agency") or f"sqlite+aiosqlite:///{tmp_path / 'agency.db'}"
    tables = [Webhook.__table__, WebhookDelivery.__table__, WebhookAttempt.__table__]  # type: ignore[attr-defined]
    setup = make_engine(url)
    async with writer(setup).begin() as connection:
        await connection.run_sync(SQLModel.metadata.create_all, tables=tables)
    clock = SystemClock()
    now = clock.now()
    async with unit_of_work(session_factory(setup)) as session:
        session.add(Webhook(id="wh_1", url="", secret="whsec_test", created_at=now, expires_at=now + timedelta(days=1)))
        for i in range(DELIVERIES):
            body = orjson.dumps({"event_id": f"e{i}"})
            session.add(
                WebhookDelivery(webhook_id="wh_1", event_id=f"e{i}", body=body, next_attempt_at=now, created_at=now)
            )

    certs, sock = make_certificates(tmp_path / "certs"), bound_socket()
    receiver = Receiver(secret="whsec_test")
    policy = EgressPolicy(
        resolver=TableResolver(), allow=frozenset({Destination.of(LOOPBACK, port_of(sock))}), ca_file=certs.ca_file
    )
    # Each dispatcher with its own engine: its own connections, as two processes of the agency would have.
    engines = [make_engine(url) for _ in range(2)]
    async with serve_https(receiver, certs, sock) as hook_url:
        async with unit_of_work(session_factory(setup)) as session:
            hook = await session.get(Webhook, "wh_1")
            assert hook is not None
            hook.url = hook_url
            session.add(hook)
        dispatchers = [WebhookDispatcher(session_factory(e), clock=clock, egress=policy) for e in engines]
        running = [asyncio.create_task(d.run()) for d in dispatchers]
        try:
            deadline = time.monotonic() + 60
            while await delivered(setup) < DELIVERIES and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            for engine in [*engines, setup]:
                await engine.dispose()

    received = Counter(orjson.loads(body)["event_id"] for body in receiver.accepted)
    assert received == Counter(f"e{i}" for i in range(DELIVERIES)), "each delivery received once"
    assert all(valid for _, valid in receiver.attempts)


async def delivered(engine: AsyncEngine) -> int:
    async with session_factory(engine)() as session:
        query = select(func.count()).select_from(WebhookDelivery).where(col(WebhookDelivery.state) == "delivered")
        return int((await session.exec(query)).one())
