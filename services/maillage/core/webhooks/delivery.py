"""Webhooks for partner systems: each inbox arrival is POSTed, HMAC-signed, retried with backoff, and traced.

A delivery row is written in the same transaction as the inbox item (so a crash never loses a push);
the dispatcher sends what is due and records every attempt.

Every call goes through an egress policy (maillage.core.webhooks.egress): https to public destinations only.

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
from datetime import datetime, timedelta

import httpx
import orjson
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from maillage.core.clock import Clock, as_utc
from maillage.core.storage.db import unit_of_work
from maillage.core.webhooks import repository
from maillage.core.webhooks.egress import EgressPolicy
from maillage.core.webhooks.models import Webhook, WebhookAttempt, WebhookDelivery, succeeded

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Maillage-Signature"
MAX_ATTEMPTS = 8


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


async def enqueue_for_all(
    session: AsyncSession, deliveries: list[tuple[str, dict[str, object]]], *, now: datetime
) -> int:
    """Within the caller's transaction: one pending delivery per live webhook and (event id, body);
    returns how many were added."""
    if not deliveries:
        return 0
    hooks = await repository.live_webhooks(session, now=now)
    for event_id, body in deliveries if hooks else ():
        payload = orjson.dumps(body)
        for hook in hooks:
            session.add(
                WebhookDelivery(
                    webhook_id=hook.id, event_id=event_id, body=payload, next_attempt_at=now, created_at=now
                )
            )
    return len(deliveries) * len(hooks)


def backoff(attempt: int, *, base: float) -> timedelta:
    return timedelta(seconds=base * 2 ** (attempt - 1))


class WebhookDispatcher:
    """Sends due deliveries, each webhook in its own lane (a task sending its deliveries one at a time, oldest
    first), so a slow receiver delays only its own; at most `concurrency` calls at once, each cut after
    `attempt_seconds` whatever the receiver does. A failure (no 2xx in time) is retried after base·2ⁿ seconds.

    It looks for due deliveries when told some were queued (`notify`, after their commit), when a lane ends,
    when the soonest retry falls due (on its clock), and otherwise every `poll` seconds — for what another
    process of the service queued and could not send. Looking every fifth of a second whatever happened was a
    query five times a second in every agency, webhooks or none (`maillage bench --profile`, README)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Clock,
        egress: EgressPolicy,
        backoff_base: float = 1.0,
        poll: float = 5.0,
        attempt_seconds: float = 10.0,
        concurrency: int = 8,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.backoff_base = backoff_base
        self.poll = poll
        self.attempt_seconds = attempt_seconds
        self.client = egress.client(timeout=attempt_seconds)
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._lanes: dict[str, asyncio.Task[None]] = {}

    def notify(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        try:
            while True:
                soonest = None
                try:
                    soonest = await self.start_lanes()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the database busy or away: the deliveries wait, none is lost
                    log.warning("webhook turn failed, trying again", extra={"error": type(exc).__name__})
                await self._wait(soonest)
        finally:
            lanes = list(self._lanes.values())
            for lane in lanes:
                lane.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)
            await self.client.aclose()

    async def start_lanes(self) -> datetime | None:
        """A lane for each webhook with a due delivery and none running yet; when the soonest delivery not due
        yet falls due."""
        self._lanes = {hook_id: lane for hook_id, lane in self._lanes.items() if not lane.done()}
        now = self.clock.now()
        async with self.sessions() as session:
            due = await repository.webhooks_with_due_deliveries(session, now=now)
            soonest = await repository.next_attempt(session, after=now)
        for hook_id in due - set(self._lanes):
            self._lanes[hook_id] = asyncio.create_task(self._lane(hook_id), name="webhook-lane")
        return as_utc(soonest) if soonest is not None else None

    async def _wait(self, soonest: datetime | None) -> None:
        """Until told, until `soonest` on the clock, or `poll` seconds at most."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.poll):
                if soonest is None:
                    await self._wakeup.wait()
                else:
                    await self.clock.wait(soonest, self._wakeup)
        self._wakeup.clear()

    async def _lane(self, hook_id: str) -> None:
        try:
            while (due := await self._next(hook_id)) is not None:
                delivery, hook = due
                async with self._slots:
                    status = await self._attempt(delivery, hook)
                async with unit_of_work(self.sessions) as session:
                    await self._record(session, delivery.id or 0, status=status)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a later turn starts the lane again; the deliveries are in the database
            log.warning("webhook lane stopped, trying again", extra={"error": type(exc).__name__})
        else:
            self._wakeup.set()  # a turn now, for the retries it left to wait

    async def _next(self, hook_id: str) -> tuple[WebhookDelivery, Webhook] | None:
        """The webhook's next due delivery, claimed for this process: two processes of one service on one
        database never send the same delivery at once (the other one moves on to the next)."""
        while True:
            now = self.clock.now()
            async with self.sessions() as session:
                due = await repository.next_due(session, hook_id, now=now)
            if due is None:
                return None
            lease = now + timedelta(seconds=2 * self.attempt_seconds)  # outlives the attempt, whatever happens
            async with unit_of_work(self.sessions) as session:
                if await repository.claim(session, due[0].id or 0, now=now, until=lease):
                    return due

    async def _attempt(self, delivery: WebhookDelivery, hook: Webhook) -> int | None:
        """The receiver's HTTP status, or None when none came within the deadline. Only the status line and
        headers are read: a receiver cannot make us hold a body of its choosing."""
        timestamp = int(self.clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            "Maillage-Event-Id": delivery.event_id,
            "Maillage-Delivery-Id": str(delivery.id),
            SIGNATURE_HEADER: signature(hook.secret, timestamp=timestamp, body=delivery.body),
        }
        try:
            async with (
                asyncio.timeout(self.attempt_seconds),
                self.client.stream("POST", hook.url, content=delivery.body, headers=headers) as response,
            ):
                return response.status_code
        except (httpx.HTTPError, TimeoutError):
            return None
        except Exception as exc:  # recorded as failed like the rest, so that a lane never spins on it
            log.warning("webhook attempt failed unexpectedly", extra={"error": type(exc).__name__})
            return None

    async def _record(self, session: AsyncSession, delivery_id: int, *, status: int | None) -> None:
        delivery = await repository.delivery(session, delivery_id)
        if delivery is None:  # its webhook was deleted during the attempt
            return
        now = self.clock.now()
        delivery.attempts += 1
        session.add(WebhookAttempt(delivery_id=delivery_id, attempt=delivery.attempts, at=now, status_code=status))
        if succeeded(status):
            delivery.state = "delivered"
        elif delivery.attempts >= MAX_ATTEMPTS:
            delivery.state = "failed"
            log.warning("webhook delivery failed for good", extra={"delivery": delivery_id})
        else:
            delivery.next_attempt_at = now + backoff(delivery.attempts, base=self.backoff_base)
        session.add(delivery)
