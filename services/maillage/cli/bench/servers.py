"""The services under load, as `maillage serve ...` subprocesses (real uvicorn servers) on free ports."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from maillage.cli.kafka_local import free_port
from maillage.core.polling import eventually


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def service_env(*, bootstrap: str, network_file: Path, data_dir: Path, prefix: str) -> dict[str, str]:
    """The environment every server of one part shares: one broker, one topic prefix, one data directory."""
    return {
        "MAILLAGE_KAFKA_BOOTSTRAP": bootstrap,
        "MAILLAGE_NETWORK_FILE": str(network_file.resolve()),
        "MAILLAGE_DATA_DIR": str(data_dir),
        "MAILLAGE_TOPIC_PREFIX": prefix,
        "MAILLAGE_TRANSACTIONAL_ID": f"{prefix}gateway",
        "MAILLAGE_LOG_LEVEL": "WARNING",
    }


@contextmanager
def servers(names: list[tuple[str, list[str]]], *, env: dict[str, str], data_dir: Path) -> Iterator[dict[str, Server]]:
    """`maillage serve ...` subprocesses on free ports; all of them stopped on exit, whatever happened."""
    started: dict[str, Server] = {}
    try:
        for name, args in names:
            started[name] = _start(name, args, env=env, data_dir=data_dir)
        yield started
    finally:
        _stop(list(started.values()))


def _start(name: str, args: list[str], *, env: dict[str, str], data_dir: Path) -> Server:
    port = free_port()
    log = data_dir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "maillage.cli.main", "serve", *args, "--port", str(port)],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Server(name=name, port=port, process=process, log=log)


def _stop(started: list[Server]) -> None:
    # Every one asked to stop first, so that they shut down side by side rather than one after the other.
    for server in started:
        if server.process.poll() is None:
            server.process.terminate()
    for server in started:
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


async def wait_ready(running: dict[str, Server], *, timeout: float = 60.0) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        for server in running.values():
            await _ready(client, server, timeout=timeout)


async def _ready(client: httpx.AsyncClient, server: Server, *, timeout: float) -> None:
    async def ready() -> bool:
        if server.process.poll() is not None:
            tail = server.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{server.name} exited:\n{tail}")
        try:
            return (await client.get(server.url + "/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    await eventually(ready, timeout=timeout, what=f"{server.name} to be ready")
