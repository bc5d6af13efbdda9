"""Background tasks owned by a service's lifespan: started together, cancelled together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)


def readiness(engine: AsyncEngine, tasks: TaskGroup, consumer: AIOKafkaConsumer) -> Callable[[], Awaitable[bool]]:
    """Ready: the database answers, every background task runs, and the consumer has its partitions."""

    async def ready() -> bool:
        async with engine.connect() as conn:
            await conn.execute(text("select 1"))
        return tasks.healthy and bool(consumer.assignment())

    return ready


async def shut_down(
    tasks: TaskGroup, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, engine: AsyncEngine
) -> None:
    """A service's end, in order: its background work first, then Kafka, then the database."""
    await tasks.stop()
    await consumer.stop()
    await producer.stop()
    await engine.dispose()


class TaskGroup:
    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, coro: Coroutine[Any, Any, None], *, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._report)
        self._tasks.append(task)

    @staticmethod
    def _report(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "background task stopped", extra={"task": task.get_name(), "error": type(task.exception()).__name__}
            )

    @property
    def healthy(self) -> bool:
        return all(not t.done() for t in self._tasks)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
