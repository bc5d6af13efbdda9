"""A background task stopped by an error stops a served process (its supervisor starts it afresh) rather than
leaving it alive and unready for good; a cancelled task, a task ending during the service's stop, and a task of
a test's process are no reason to stop."""

from __future__ import annotations

import asyncio

from maillage.core.lifecycle import TaskFailures, TaskGroup


async def _fails() -> None:
    await asyncio.sleep(0)
    raise RuntimeError("the loop met something it cannot go on from")


async def _runs() -> None:
    await asyncio.sleep(3600)


async def _fails_when_cancelled() -> None:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        raise RuntimeError("cleaning up after a broker already gone") from None


async def test_a_task_stopped_by_an_error_stops_a_served_process() -> None:
    stops: list[str] = []
    failures = TaskFailures(stop=lambda: stops.append("stop"))
    tasks = TaskGroup(failures)
    tasks.start(_runs(), name="outbox-relay")
    tasks.start(_fails(), name="gateway-loop")
    await asyncio.sleep(0.05)

    assert not tasks.healthy
    assert failures.failed == "gateway-loop"
    assert stops == ["stop"]
    await tasks.stop()
    assert stops == ["stop"], "a cancelled task is no failure"


async def test_a_task_that_fails_as_the_service_stops_does_not_stop_it_again() -> None:
    stops: list[str] = []
    failures = TaskFailures(stop=lambda: stops.append("stop"))
    tasks = TaskGroup(failures)
    tasks.start(_fails_when_cancelled(), name="consumer")
    await asyncio.sleep(0.01)
    await tasks.stop()

    assert failures.failed is None and stops == []


async def test_outside_a_served_process_a_failed_task_is_only_recorded() -> None:
    failures = TaskFailures()
    tasks = TaskGroup(failures)
    tasks.start(_fails(), name="retention")
    await asyncio.sleep(0.05)

    assert failures.failed == "retention"
