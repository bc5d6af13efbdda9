"""Test support for tests that run Maillage as real processes, as `maillage up` does."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import tomli_w

from maillage.cli.kafka_local import free_port
from maillage.core.config.network import load_network
from maillage.core.config.settings import DEFAULT_NETWORK


def network_copy(directory: Path, *, prefix: str) -> Path:
    """The demo network with free ports and its own topic prefix, written to `directory`."""
    import tomllib

    doc = tomllib.loads(DEFAULT_NETWORK.read_text())
    doc["policy"] = str(load_network(DEFAULT_NETWORK).policy)
    doc["kafka"]["topic_prefix"] = prefix
    doc["gateway"]["port"] = free_port()
    doc["dispatcher"]["port"] = free_port()
    doc["monitor"]["port"] = free_port()
    for agency in doc["agencies"]:
        agency["port"] = free_port()
    path = directory / "network.toml"
    directory.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tomli_w.dumps(doc).encode())
    return path


def maillage(*args: str, env: dict[str, str], log: Path, own_group: bool = False) -> subprocess.Popen[bytes]:
    """`own_group`: in a process group of its own, as a terminal runs a command, so that a test can send the
    group a Ctrl-C (SIGINT to the group) without sending it to pytest."""
    return subprocess.Popen(
        [sys.executable, "-m", "maillage.cli.main", *args],
        env={**os.environ, **env},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=own_group,
    )


def wait_ready(url: str, process: subprocess.Popen[bytes], *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode} before {url} was ready")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready after {timeout}s")


def children_of(pid: int) -> list[int]:
    """Every live descendant of `pid`, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        kids = [p for p, parent in parents.items() if parent == current]
        found.extend(kids)
        frontier.extend(kids)
    return found


def command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
