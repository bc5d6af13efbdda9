"""Time, injected everywhere: the system clock in service, a manual one in tests.

Whatever waits for a deadline (escalation timers, webhook retries) waits on the clock, and a manual clock
moves only when a test advances it, so no test ever sleeps for a timer.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol

from maillage.core.polling import wait_set


def as_utc(moment: datetime) -> datetime:
    """A time read back from a database: SQLite hands back naive datetimes for what was stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def wait(self, until: datetime, wake: asyncio.Event) -> None:
        """Return at `until`, or as soon as `wake` is set."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def wait(self, until: datetime, wake: asyncio.Event) -> None:
        await wait_set(wake, timeout=max(0.0, (until - self.now()).total_seconds()))


class ManualClock:
    """A clock that moves only when told to; whoever waits on it wakes when it passes their deadline."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._moved = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    def advance(self, by: timedelta) -> None:
        self._now += by
        self._moved.set()

    def set(self, to: datetime) -> None:
        self._now = to
        self._moved.set()

    async def wait(self, until: datetime, wake: asyncio.Event) -> None:
        while self._now < until and not wake.is_set():
            self._moved.clear()
            moved = asyncio.ensure_future(self._moved.wait())
            woken = asyncio.ensure_future(wake.wait())
            try:
                await asyncio.wait({moved, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                moved.cancel()
                woken.cancel()
