"""A background task stopped by an error stops a served process (its supervisor starts it afresh) rather than
leaving it alive and unready for good; cancelled tasks and tasks of a test's process only are logged."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from maillage.core.lifecycle import TaskFailures, TaskGroup


@pytest.fixture
def sigterms() -> Iterator[list[int]]:
    """The SIGTERMs this process sends itself meanwhile, caught rather than obeyed."""
    caught: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield caught
    finally:
        signal.signal(signal.SIGTERM, previous)


async def _fails() -> None:
    await asyncio.sleep(0)
    raise RuntimeError("the loop met something it cannot go on from")


async def _runs() -> None:
    await asyncio.sleep(3600)


async def test_a_task_stopped_by_an_error_stops_a_served_process(sigterms: list[int]) -> None:
    failures = TaskFailures(stop_process=True)
    tasks = TaskGroup(failures)
    tasks.start(_runs(), name="outbox-relay")
    tasks.start(_fails(), name="gateway-loop")
    await asyncio.sleep(0.05)

    assert not tasks.healthy
    assert failures.failed == "gateway-loop"
    assert sigterms == [signal.SIGTERM]
    await tasks.stop()
    assert sigterms == [signal.SIGTERM], "a cancelled task is no failure"


async def test_outside_a_served_process_a_failed_task_is_only_recorded(sigterms: list[int]) -> None:
    failures = TaskFailures()
    tasks = TaskGroup(failures)
    tasks.start(_fails(), name="retention")
    await asyncio.sleep(0.05)

    assert failures.failed == "retention"
    assert sigterms == []
