"""Waiting for something that happens elsewhere (a broker, a service, a delivery): poll with a deadline, or wait for
an event with a bound."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 20.0, what: str = "condition", every: float = 0.05
) -> T:
    """Poll `probe` until it returns something truthy; raise TimeoutError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(every)


async def wait_set(event: asyncio.Event, *, timeout: float) -> bool:
    """Wait for `event` at most `timeout` seconds; True if it was set.

    Not `wait_for` of asyncio: on Python 3.11 it returns normally when its task is cancelled
    just as the event is set (a commit notifying a relay as the service stops), so the cancellation is lost, the
    loop around it runs on, and the service's stop waits for that task forever."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
            return True
    return False
