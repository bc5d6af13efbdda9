"""The machine the bench ran on, and where its CPU went: per process and in all (Linux /proc)."""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def describe_machine(*, kafka: str) -> dict[str, Any]:
    # Other work on the machine during the run skews every figure: the load average says how much.
    return {
        "cores": os.cpu_count(),
        "ram_gib": round(_ram_bytes() / 2**30, 1),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kafka": kafka,
        "load_before": load_average(),
    }


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def _ram_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclass(frozen=True)
class CpuSample:
    at: float  # time.monotonic()
    seconds: dict[str, float]  # CPU seconds used so far, per process
    machine: tuple[float, float]  # (busy, total) jiffies over every core
    # Of a JVM's seconds, those of its JIT compiler threads alive now (per JVM named to the meter).
    compiling: dict[str, float] = field(default_factory=dict)


class CpuMeter:
    """CPU seconds of named processes and of the whole machine (Linux /proc), sampled when asked."""

    def __init__(self, pids: dict[str, int | None], *, jvms: tuple[str, ...] = ()) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid}
        self.jvms = [name for name in jvms if name in self.pids]

    def sample(self) -> CpuSample:
        return CpuSample(
            at=time.monotonic(),
            seconds={name: _cpu_seconds(pid) for name, pid in self.pids.items()},
            machine=_machine_ticks(),
            compiling={name: _compiler_seconds(self.pids[name]) for name in self.jvms},
        )

    @staticmethod
    def percent(a: CpuSample, b: CpuSample) -> tuple[dict[str, float], float]:
        """% of one core per process, and % of all cores busy, from `a` to `b`."""
        wall = max(b.at - a.at, 1e-9)
        used = {name: round(100 * (b.seconds[name] - a.seconds[name]) / wall, 1) for name in a.seconds}
        machine = 100 * (b.machine[0] - a.machine[0]) / max(b.machine[1] - a.machine[1], 1e-9)
        return used, round(machine, 1)

    @staticmethod
    def used(a: CpuSample, b: CpuSample) -> dict[str, float]:
        return {name: b.seconds[name] - a.seconds[name] for name in a.seconds}

    @staticmethod
    def compiling(a: CpuSample, b: CpuSample) -> dict[str, float]:
        """Of `used`, what each JVM's JIT compiler threads took: the warm-up of a JVM started for the run. At
        least that much — the JVM stops compiler threads it no longer needs, and their time leaves the sum."""
        return {name: max(b.compiling[name] - a.compiling[name], 0.0) for name in a.compiling if name in b.compiling}


def ms_per(seconds: dict[str, float], count: int, *, digits: int = 2) -> dict[str, float]:
    """CPU seconds per name as milliseconds per item (per referral, per record, per alert)."""
    return {name: round(1000 * used / max(count, 1), digits) for name, used in seconds.items()}


def others_percent(cpu: dict[str, float], *, busy: float) -> float:
    """The machine's busy time none of the measured processes account for, in % of one core."""
    return round(busy * (os.cpu_count() or 1) - sum(cpu.values()), 1)


def _cpu_seconds(pid: int) -> float:
    try:
        return _stat_seconds(Path(f"/proc/{pid}/stat"))
    except OSError:
        return math.nan


def _stat_seconds(stat: Path) -> float:
    """utime + stime of a process's or a thread's `stat` file."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _compiler_seconds(pid: int) -> float:
    """CPU seconds of a JVM's JIT compiler threads ("C1 CompilerThre…", "C2 CompilerThre…") alive now."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            if (task / "comm").read_text().startswith(("C1 CompilerThre", "C2 CompilerThre")):
                total += _stat_seconds(task / "stat")
        except OSError:
            continue  # the thread ended meanwhile
    return total


def _machine_ticks() -> tuple[float, float]:
    """(busy, total) jiffies over every core, from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return (math.nan, math.nan)
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # without guest time, already counted in user
    return (total - idle, total)
