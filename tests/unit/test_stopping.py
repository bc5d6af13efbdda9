"""A service stops: a background loop cancelled as it is woken stops all the same, and no stop step waits forever."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from maillage.core.lifecycle import TaskGroup
from maillage.core.polling import wait_set

pytestmark = pytest.mark.unit


async def relay_like_loop(wakeup: asyncio.Event, turns: list[int]) -> None:
    """What the outbox relay, the webhook dispatcher and the escalation timer do between turns."""
    while True:
        turns.append(len(turns))
        await wait_set(wakeup, timeout=0.2)
        wakeup.clear()


async def test_a_loop_cancelled_as_a_commit_wakes_it_stops() -> None:
    # The race that hung a service's stop: its task cancelled in the very turn a commit set its wake-up event.
    # asyncio.wait_for (Python 3.11) returned normally there, losing the cancellation, and the loop ran on.
    wakeup, turns = asyncio.Event(), []
    loop = asyncio.create_task(relay_like_loop(wakeup, turns))
    await asyncio.sleep(0.05)  # it waits between turns
    wakeup.set()
    await asyncio.sleep(0)  # the event's waiter is woken...
    loop.cancel()  # ...and the service stops in that same turn

    done, _ = await asyncio.wait([loop], timeout=2)

    assert done == {loop} and loop.cancelled()


async def test_waiting_for_an_event_says_whether_it_was_set() -> None:
    event = asyncio.Event()
    assert await wait_set(event, timeout=0.01) is False
    event.set()
    assert await wait_set(event, timeout=5) is True


async def test_a_task_that_ignores_its_cancellation_delays_a_stop_by_the_bound_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def stubborn() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(10)  # its cancellation lost, as wait_for lost it

    async def obedient() -> None:
        await asyncio.sleep(10)

    tasks = TaskGroup()
    tasks.start(stubborn(), name="stubborn")
    tasks.start(obedient(), name="obedient")
    await asyncio.sleep(0)
    started = time.monotonic()

    with caplog.at_level(logging.ERROR, logger="maillage.core.lifecycle"):
        await tasks.stop(within=0.3)

    assert 0.3 <= time.monotonic() - started < 2
    assert [r.__dict__.get("task") for r in caplog.records if r.message == "background task did not stop"] == [
        "stubborn"
    ]
