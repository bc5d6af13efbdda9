"""Webhooks for partner systems: each inbox arrival is POSTed, HMAC-signed, retried with backoff, and traced.

A delivery row is written in the same transaction as the inbox item (so a crash never loses a push);
the dispatcher sends what is due and records every attempt.

Signature: header `Maillage-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`.
A receiver recomputes it with the secret it got at registration and refuses stale timestamps.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
import orjson
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.db import unit_of_work

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Maillage-Signature"
MAX_ATTEMPTS = 8


class Webhook(SQLModel, table=True):
    __tablename__ = "webhook"

    id: str = Field(primary_key=True)
    url: str
    secret: str
    created_at: datetime
    active: bool = True


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_delivery"

    id: int | None = Field(default=None, primary_key=True)
    webhook_id: str = Field(index=True)
    event_id: str
    body: bytes
    state: str = "pending"  # pending | delivered | failed
    attempts: int = 0
    next_attempt_at: datetime = Field(index=True)
    created_at: datetime


class WebhookAttempt(SQLModel, table=True):
    __tablename__ = "webhook_attempt"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(index=True)
    attempt: int
    at: datetime
    status_code: int | None = None
    error: str | None = None


TABLES: list[type[SQLModel]] = [Webhook, WebhookDelivery, WebhookAttempt]


def signature(secret: str, *, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str, header: str, body: bytes, *, now: int, tolerance: int = 300) -> bool:
    """What a receiver does: recompute, compare in constant time, refuse old timestamps."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    expected = signature(secret, timestamp=timestamp, body=body)
    return abs(now - timestamp) <= tolerance and hmac.compare_digest(expected, header)


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


async def enqueue_for_all(session: AsyncSession, deliveries: list[tuple[str, dict[str, object]]], *,
                          now: datetime) -> int:
    """Within the caller's transaction: one pending delivery per active webhook and (event id, body);
    returns how many were added."""
    if not deliveries:
        return 0
    hooks = (await session.exec(select(Webhook).where(col(Webhook.active).is_(True)))).all()
    for event_id, body in deliveries if hooks else ():
        payload = orjson.dumps(body)
        for hook in hooks:
            session.add(WebhookDelivery(webhook_id=hook.id, event_id=event_id, body=payload,
                                        next_attempt_at=now, created_at=now))
    return len(deliveries) * len(hooks)


def backoff(attempt: int, *, base: float) -> timedelta:
    return timedelta(seconds=base * 2 ** (attempt - 1))


class WebhookDispatcher:
    """Sends due deliveries; a failure (non-2xx, timeout, refused) is retried after base·2ⁿ seconds."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, clock: Callable[[], datetime],
                 backoff_base: float = 1.0, poll: float = 0.2, timeout: float = 5.0) -> None:
        self.sessions = sessions
        self.clock = clock
        self.backoff_base = backoff_base
        self.poll = poll
        self.client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._wakeup = asyncio.Event()

    def notify(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        try:
            while True:
                try:
                    sent = await self.send_due()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the database busy or away: the deliveries wait, none is lost
                    log.warning("webhook turn failed, trying again", extra={"error": type(exc).__name__})
                    sent = 0
                if not sent:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), timeout=self.poll)
                    self._wakeup.clear()
        finally:
            await self.client.aclose()

    async def send_due(self) -> int:
        async with self.sessions() as session:
            due = (await session.exec(
                select(WebhookDelivery, Webhook).join(Webhook, col(Webhook.id) == WebhookDelivery.webhook_id)
                .where(WebhookDelivery.state == "pending", col(WebhookDelivery.next_attempt_at) <= self.clock())
                .order_by(col(WebhookDelivery.id)).limit(50))).all()
        results = await asyncio.gather(*(self._attempt(d, h) for d, h in due))
        async with unit_of_work(self.sessions) as session:
            for (delivery, _), (status, error) in zip(due, results, strict=True):
                self._record(session, delivery, status=status, error=error)
        return len(due)

    async def _attempt(self, delivery: WebhookDelivery, hook: Webhook) -> tuple[int | None, str | None]:
        timestamp = int(self.clock().timestamp())
        headers = {"Content-Type": "application/json", "Maillage-Event-Id": delivery.event_id,
                   "Maillage-Delivery-Id": str(delivery.id),
                   SIGNATURE_HEADER: signature(hook.secret, timestamp=timestamp, body=delivery.body)}
        try:
            response = await self.client.post(hook.url, content=delivery.body, headers=headers)
        except httpx.HTTPError as exc:
            return None, type(exc).__name__
        return response.status_code, None if response.is_success else f"HTTP {response.status_code}"

    def _record(self, session: AsyncSession, delivery: WebhookDelivery, *, status: int | None,
                error: str | None) -> None:
        now = self.clock()
        delivery.attempts += 1
        session.add(WebhookAttempt(delivery_id=delivery.id or 0, attempt=delivery.attempts, at=now,
                                   status_code=status, error=error))
        if error is None:
            delivery.state = "delivered"
        elif delivery.attempts >= MAX_ATTEMPTS:
            delivery.state = "failed"
            log.warning("webhook delivery failed for good", extra={"delivery": delivery.id})
        else:
            delivery.next_attempt_at = now + backoff(delivery.attempts, base=self.backoff_base)
        session.add(delivery)
