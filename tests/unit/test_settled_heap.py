"""A served process sets what it made to start aside from the garbage collector once it listens
(`lifecycle.settle_heap`): the oldest generation's collections then walk only what serving made since, and its
youngest generation is collected once many more containers live, not every 700."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.applications import Starlette

from maillage.core.lifecycle import YOUNG_COLLECTION
from maillage.core.polling import eventually
from maillage.core.web.serving import _Server


class Made:
    """Something a service makes while it starts (a client, a cache), or afterwards."""


async def test_what_a_service_made_to_start_is_set_aside_once_it_listens_and_what_comes_after_is_not() -> None:
    at_start: list[Made] = []
    thresholds = gc.get_threshold()

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        at_start.append(Made())
        yield

    server = _Server(uvicorn.Config(Starlette(lifespan=lifespan), host="127.0.0.1", port=0, log_config=None))
    running = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: asyncio.sleep(0, server.started or running.done()), what="the server to listen")
        after = Made()
        watched = {id(o) for o in gc.get_objects() if isinstance(o, Made)}
        assert id(at_start[0]) not in watched, "made to start: out of the collector's walks"
        assert id(after) in watched, "made since: collected as ever"
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == YOUNG_COLLECTION, "the youngest generation collected less often"
    finally:
        gc.unfreeze()  # this test process serves many apps; none of theirs is kept for good
        gc.set_threshold(*thresholds)
        server.should_exit = True
        await running
