"""On-call workers for `maillage bench --only oncall`: hundreds of WebSockets, spread over child processes.

Each child process holds its share of the sockets on its own event loop (each a `LeanSocket`: a phone's
client costs the phone, not the machine under test) and stamps every `alert` message with `time.time()` as
soon as its last bytes are read, so the arrival clock is the machine's wall clock, the same one the load
generator reads before each POST. Spreading the sockets keeps one client event loop
from becoming the queue the figure measures; each child also measures its own loop's lag (how late a 10 ms
timer fires), so the report can say whether the client kept up.

The parent talks to each child over a `multiprocessing` pipe: the child answers "ready" once every socket
got its `hello` and `snapshot`, then answers "count" (alert messages so far) and "stop" (every arrival).
This module imports nothing heavy: every child process imports it afresh.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import orjson

from maillage.cli.bench.lean_socket import LeanSocket

CONNECTS_AT_ONCE = 25
TICK_SECONDS = 0.01


@dataclass
class Arrivals:
    """What one child saw: per worker, alert id → first arrival (epoch seconds)."""

    by_worker: dict[str, dict[str, float]] = field(default_factory=dict)
    # (epoch seconds, how late the 10 ms tick fired, seconds)
    lags: list[tuple[float, float]] = field(default_factory=list)
    closed: dict[str, str] = field(default_factory=dict)  # worker → why its socket ended early
    other: int = 0  # messages other than alerts (updates, errors)


def run_fast(coro: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed, as uvicorn runs the services."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro)


# --- the child process --------------------------------------------------------------------------


def child_main(url: str, workers: list[tuple[str, str]], conn: Connection, compression: bool) -> None:
    run_fast(_Child(url, workers, conn=conn, compression=compression).run())


class _Child:
    """One child process's share of the sockets, read on its own event loop."""

    def __init__(self, url: str, workers: list[tuple[str, str]], *, conn: Connection, compression: bool) -> None:
        self.url, self.workers, self.conn, self.compression = url, workers, conn, compression
        self.seen = Arrivals(by_worker={worker: {} for worker, _ in workers})
        self.counted = 0
        self.sockets: dict[str, LeanSocket] = {}
        self.errors: list[str] = []
        self.stopping = False

    async def run(self) -> None:
        gate = asyncio.Semaphore(CONNECTS_AT_ONCE)
        await asyncio.gather(*(self._open(worker, token, gate=gate) for worker, token in self.workers))
        ticker = asyncio.create_task(self._tick())
        self.conn.send(("ready", len(self.sockets), self.errors))
        try:
            asked_to_stop = await self._answer()
        finally:
            self.stopping = True
            ticker.cancel()
            for socket in self.sockets.values():
                socket.close()
            await asyncio.gather(ticker, return_exceptions=True)
        if asked_to_stop:
            self.conn.send(("done", self.seen))

    async def _open(self, worker: str, token: str, *, gate: asyncio.Semaphore) -> None:
        mine = self.seen.by_worker[worker]
        greeting: list[bytes] = []  # the hello and the snapshot, before any alert
        greeted = asyncio.Event()

        def on_message(at: float, raw: bytes) -> None:
            if len(greeting) < 2:
                greeting.append(raw)
                if len(greeting) == 2:
                    greeted.set()
                return
            message = orjson.loads(raw)
            if message.get("type") == "alert":
                mine.setdefault(message["alert"]["alert_id"], at)
                self.counted += 1
            else:
                self.seen.other += 1

        async with gate:
            try:
                socket = await LeanSocket.connect(
                    self.url,
                    on_message=on_message,
                    headers={"Authorization": f"Bearer {token}"},
                    offer_deflate=self.compression,  # as browsers do, unless asked not to
                    timeout=60,
                )
                await asyncio.wait_for(greeted.wait(), 60)
            except Exception as exc:
                self.errors.append(f"{worker}: {type(exc).__name__}: {exc}")
                return
            hello, snapshot = (orjson.loads(raw).get("type") for raw in greeting)
            if (hello, snapshot) != ("hello", "snapshot"):
                self.errors.append(f"{worker}: expected hello and snapshot, got {hello}, {snapshot}")
                socket.close()
                return
            socket.closed.add_done_callback(lambda ended: self._ended(worker, ended.result()))
            self.sockets[worker] = socket

    def _ended(self, worker: str, why: str) -> None:
        if why and not self.stopping:
            self.seen.closed[worker] = why

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(TICK_SECONDS)
            self.seen.lags.append((time.time(), loop.time() - before - TICK_SECONDS))

    async def _answer(self) -> bool:
        """Answer the parent until it says "stop" (True) or is gone (False)."""
        loop = asyncio.get_running_loop()
        while True:  # the pipe stays blocking: read it in a thread, answer from the loop
            try:
                what = await loop.run_in_executor(None, self.conn.recv)
            except (EOFError, OSError):  # the parent is gone or gave up: close the sockets and leave
                return False
            if what == "count":
                self.conn.send(("count", self.counted, len(self.seen.closed)))
            elif what == "stop":
                return True


# --- the parent side ----------------------------------------------------------------------------


class SocketFleet:
    """The child processes and their sockets, seen from the bench's event loop."""

    def __init__(self, url: str, workers: list[tuple[str, str]], *, processes: int, compression: bool = True) -> None:
        ctx = multiprocessing.get_context("spawn")  # the parent runs an event loop: never fork it
        self.processes: list[multiprocessing.process.BaseProcess] = []
        self.pipes: list[Connection] = []
        processes = max(1, min(processes, len(workers)))
        for i in range(processes):
            mine, theirs = ctx.Pipe()
            process = ctx.Process(
                target=child_main,
                args=(url, workers[i::processes], theirs, compression),
                name=f"bench-sockets-{i}",
                daemon=True,
            )
            process.start()
            theirs.close()
            self.processes.append(process)
            self.pipes.append(mine)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    async def _recv(self, index: int, timeout: float) -> Any:
        loop = asyncio.get_running_loop()
        pipe, process = self.pipes[index], self.processes[index]
        deadline = time.monotonic() + timeout
        while not await loop.run_in_executor(None, pipe.poll, 0.5):
            if not process.is_alive():
                raise RuntimeError(f"{process.name} exited with code {process.exitcode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{process.name} did not answer within {timeout:g} s")
        return pipe.recv()

    async def _all(self, timeout: float) -> list[Any]:
        return list(await asyncio.gather(*(self._recv(i, timeout) for i in range(len(self.pipes)))))

    async def ready(self, *, timeout: float = 180.0) -> tuple[int, list[str]]:
        """Once every child connected its sockets: how many are connected, and what went wrong."""
        answers = await self._all(timeout)
        return sum(a[1] for a in answers), [e for a in answers for e in a[2]]

    async def count(self) -> tuple[int, int]:
        """Alert messages received so far over every socket, and sockets that ended."""
        for pipe in self.pipes:
            pipe.send("count")
        answers = await self._all(30)
        return sum(a[1] for a in answers), sum(a[2] for a in answers)

    async def wait_for(self, total: int, *, timeout: float) -> int:
        """Until `total` alert messages arrived over all sockets (or `timeout`); the count reached."""
        deadline = time.monotonic() + timeout
        while True:
            got, _ = await self.count()
            if got >= total or time.monotonic() > deadline:
                return got
            await asyncio.sleep(0.1)

    async def stop(self) -> Arrivals:
        for pipe in self.pipes:
            pipe.send("stop")
        merged = Arrivals()
        for _, part in await self._all(60):
            merged.by_worker.update(part.by_worker)
            merged.lags.extend(part.lags)
            merged.closed.update(part.closed)
            merged.other += part.other
        return merged

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.close()
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)


def lags_within(lags: Iterable[tuple[float, float]], start: float, end: float) -> list[float]:
    return [lag for at, lag in lags if start <= at <= end]
