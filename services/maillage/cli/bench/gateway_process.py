"""One gateway process of the bench's throughput part (`python -m maillage.cli.bench.gateway_process`).

The real gateway (`running_gateway`), its settings from the environment as a served one's, with its loop
driven here so that the bench can hold every process while it pre-produces the records to time. Commands,
one per line on standard input: `run` (decide batches: the state it starts in), `hold` (stop polling after the
batch in hand) and `stop`. After every poll, and after a `hold`, it writes one line of JSON to standard output:
a `Progress`. `--plain`: sealing and signing switched off (bench/plain.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from maillage.cli.bench.fixtures import service_keys
from maillage.cli.bench.plain import PlainTrust
from maillage.cli.bench.sockets import run_fast
from maillage.core.crypto.keys import GATEWAY
from maillage.core.lifecycle import settle_heap
from maillage.gateway.app import running_gateway
from maillage.gateway.crypto import CryptoThreads
from maillage.gateway.handlers import TransactionalLoop
from maillage.gateway.settings import GatewaySettings

POLL_MS = 100  # a held or idle process answers a command within about this


@dataclass(frozen=True)
class Progress:
    decided: int  # records whose transaction committed, since the process started
    cpu_seconds: float  # the process's, every thread
    owned: int  # partitions of the submitted topic it owns
    deciding: bool  # owned, their previous owners fenced, everything read
    held: bool

    def line(self) -> bytes:
        return orjson.dumps(asdict(self)) + b"\n"

    @classmethod
    def of_line(cls, line: bytes) -> Progress:
        return cls(**orjson.loads(line))


class GatewayProcesses:
    """The bench's side: `count` gateway processes sharing the submitted topic's partitions (one consumer group,
    one database), driven together; their latest `Progress` each."""

    def __init__(self, processes: list[asyncio.subprocess.Process]) -> None:
        self.processes = processes
        self.latest: list[Progress | None] = [None] * len(processes)
        self.changed = asyncio.Condition()
        self.ended: str | None = None  # why a process ended before it was told to stop

    @classmethod
    @asynccontextmanager
    async def started(
        cls, count: int, *, env: dict[str, str], plain: bool, logs: Path
    ) -> AsyncIterator[GatewayProcesses]:
        processes: list[asyncio.subprocess.Process] = []
        readers: list[asyncio.Task[None]] = []
        try:
            for i in range(count):
                with (logs / f"gateway-{i + 1}.log").open("wb") as log:
                    processes.append(
                        await asyncio.create_subprocess_exec(
                            sys.executable,
                            "-m",
                            __name__,
                            *(["--plain"] if plain else []),
                            stdin=asyncio.subprocess.PIPE,
                            stdout=asyncio.subprocess.PIPE,
                            stderr=log,
                            env={**os.environ, **env},
                        )
                    )
            gateways = cls(processes)
            readers = [asyncio.create_task(gateways._read(i)) for i in range(count)]
            yield gateways
        finally:
            for task in readers:
                task.cancel()
            await _stopped(processes)

    @property
    def cpu_seconds(self) -> float:
        return sum(p.cpu_seconds for p in self.latest if p is not None)

    @property
    def shares(self) -> list[int]:
        return [p.decided if p is not None else 0 for p in self.latest]

    def tell(self, command: str) -> None:
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write(f"{command}\n".encode())

    async def until(self, done: Callable[[list[Progress]], bool], *, what: str, stall: float = 60.0) -> None:
        """Wait until `done` holds of every process's latest progress; raise when nothing moves for `stall` s."""
        async with self.changed:
            while True:
                if self.ended is not None:
                    raise RuntimeError(self.ended)
                latest = [p for p in self.latest if p is not None]
                if len(latest) == len(self.processes) and done(latest):
                    return
                try:
                    await asyncio.wait_for(self.changed.wait(), timeout=stall)
                except TimeoutError:
                    raise RuntimeError(f"gateway processes stalled {what}: decided {self.shares}") from None

    async def _read(self, i: int) -> None:
        stdout = self.processes[i].stdout
        assert stdout is not None
        while line := await stdout.readline():
            async with self.changed:
                self.latest[i] = Progress.of_line(line)
                self.changed.notify_all()
        exit_code = await self.processes[i].wait()
        async with self.changed:
            self.ended = f"gateway process {i + 1} ended (exit {exit_code}): see gateway-{i + 1}.log"
            self.changed.notify_all()


async def _stopped(processes: list[asyncio.subprocess.Process], *, within: float = 15.0) -> None:
    for process in processes:
        if process.returncode is None and process.stdin is not None:
            process.stdin.write(b"stop\n")
    for process in processes:
        try:
            await asyncio.wait_for(process.wait(), timeout=within)
        except TimeoutError:
            process.kill()
            await process.wait()


async def main(*, plain: bool) -> None:
    settings = GatewaySettings()
    async with running_gateway(settings, serve=False) as started:
        crypto = CryptoThreads(PlainTrust.load(service_keys(settings), GATEWAY)) if plain else None
        if crypto is not None:
            started.loop.crypto = crypto
        settle_heap()  # as a served gateway's, once started (`serving.serve`)
        try:
            await _drive(started.loop, await _commands())
        finally:
            if crypto is not None:
                crypto.close()


async def _drive(loop: TransactionalLoop, commands: asyncio.Queue[str]) -> None:
    held = False
    while True:
        while held or not commands.empty():
            command = await commands.get()
            if command == "stop":
                return
            held = command == "hold"
            if held:
                _write(loop, held=True)
        await loop.run_once(timeout_ms=POLL_MS)
        _write(loop, held=False)


def _write(loop: TransactionalLoop, *, held: bool) -> None:
    progress = Progress(
        decided=loop.processed,
        cpu_seconds=time.process_time(),
        owned=len(loop.producers.owned),
        deciding=loop.producers.deciding,
        held=held,
    )
    sys.stdout.buffer.write(progress.line())
    sys.stdout.buffer.flush()


async def _commands() -> asyncio.Queue[str]:
    """Standard input's lines, as they come; `stop` when it closes (the bench gone)."""
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    commands: asyncio.Queue[str] = asyncio.Queue()

    async def read() -> None:
        while line := await reader.readline():
            commands.put_nowait(line.decode().strip())
        commands.put_nowait("stop")

    _reading.add(asyncio.create_task(read()))
    return commands


_reading: set[asyncio.Task[None]] = set()  # the task reading standard input, referenced while the process lives


if __name__ == "__main__":
    run_fast(main(plain="--plain" in sys.argv[1:]))
