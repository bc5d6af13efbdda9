"""When the webhook dispatcher looks for due deliveries: at once when told, and when a retry falls due on its clock
— not only when its (here hour-long) poll comes round."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.clock import Clock, ManualClock
from maillage.core.polling import eventually
from maillage.core.storage.db import make_engine, session_factory, unit_of_work, writer
from maillage.core.webhooks.delivery import WebhookDispatcher
from maillage.core.webhooks.egress import Destination, EgressPolicy, TableResolver
from maillage.core.webhooks.models import Webhook, WebhookAttempt, WebhookDelivery
from tests.webhooks import LOOPBACK, Receiver, bound_socket, make_certificates, port_of, serve_https

pytestmark = pytest.mark.integration

AN_HOUR = 3600.0
BACKOFF = 30.0  # seconds of the clock before the first retry


@asynccontextmanager
async def dispatching(
    tmp_path: Path, receiver: Receiver, *, clock: Clock
) -> AsyncIterator[tuple[WebhookDispatcher, async_sessionmaker[AsyncSession]]]:
    """A dispatcher polling once an hour, over a database holding one webhook to `receiver`."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'agency.db'}")
    tables = [Webhook.__table__, WebhookDelivery.__table__, WebhookAttempt.__table__]  # type: ignore[attr-defined]
    async with writer(engine).begin() as connection:
        await connection.run_sync(SQLModel.metadata.create_all, tables=tables)
    sessions = session_factory(engine)
    certs, sock = make_certificates(tmp_path / "certs"), bound_socket()
    policy = EgressPolicy(
        resolver=TableResolver(), allow=frozenset({Destination.of(LOOPBACK, port_of(sock))}), ca_file=certs.ca_file
    )
    now = clock.now()
    async with serve_https(receiver, certs, sock) as hook_url:
        async with unit_of_work(sessions) as session:
            later = now + timedelta(days=1)
            session.add(Webhook(id="wh_1", url=hook_url, secret=receiver.secret, created_at=now, expires_at=later))
        dispatcher = WebhookDispatcher(sessions, clock=clock, egress=policy, backoff_base=BACKOFF, poll=AN_HOUR)
        running = asyncio.create_task(dispatcher.run())
        try:
            yield dispatcher, sessions
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await engine.dispose()


async def queue(sessions: async_sessionmaker[AsyncSession], event_id: str, *, at: datetime) -> None:
    async with unit_of_work(sessions) as session:
        body = orjson.dumps({"event_id": event_id})
        session.add(WebhookDelivery(webhook_id="wh_1", event_id=event_id, body=body, next_attempt_at=at, created_at=at))


async def test_a_delivery_queued_while_the_dispatcher_waits_is_sent_once_it_is_told(tmp_path: Path) -> None:
    receiver = Receiver(secret="whsec_test")
    clock = ManualClock(datetime.now(UTC))  # now: the receiver checks the signature's time
    async with dispatching(tmp_path, receiver, clock=clock) as (dispatcher, sessions):
        await asyncio.sleep(0.5)  # its first turn found nothing: it now waits, for an hour at most
        await queue(sessions, "e1", at=clock.now())
        dispatcher.notify()  # what the agency does after the commit that queued it
        await eventually(lambda: asyncio.sleep(0, receiver.accepted), timeout=10, what="the delivery")
    assert [orjson.loads(body)["event_id"] for body in receiver.accepted] == ["e1"]


async def test_a_failed_delivery_is_tried_again_when_its_backoff_falls_due_on_the_clock(tmp_path: Path) -> None:
    receiver = Receiver(secret="whsec_test", failures=1)
    clock = ManualClock(datetime.now(UTC))  # now: the receiver checks the signature's time
    async with dispatching(tmp_path, receiver, clock=clock) as (dispatcher, sessions):
        await queue(sessions, "e1", at=clock.now())
        dispatcher.notify()
        await eventually(lambda: asyncio.sleep(0, receiver.attempts), timeout=10, what="the first attempt")
        assert receiver.attempts == [(503, True)]

        clock.advance(timedelta(seconds=BACKOFF - 1))
        await asyncio.sleep(0.5)
        assert len(receiver.attempts) == 1, "not tried again before its backoff is over"

        clock.advance(timedelta(seconds=1))
        await eventually(lambda: asyncio.sleep(0, receiver.accepted), timeout=10, what="the retry")
    assert receiver.attempts == [(503, True), (200, True)]
