"""Keeping `maillage up`'s processes alive: restarts with backoff, and a stop that leaves no process behind."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger("maillage.up")

_PR_SET_PDEATHSIG = 1
# Linux's; elsewhere (a developer's macOS) children are still stopped by `stop_in_order`, not by the kernel.
_prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)


class SupervisorSettings(BaseSettings):
    """How `maillage up` restarts what crashed and how long it gives everything to stop."""

    model_config = SettingsConfigDict(env_prefix="MAILLAGE_", extra="ignore")

    # From the stop request (Ctrl-C, SIGTERM) to SIGKILL of whatever is still running.
    shutdown_seconds: float = Field(default=10.0, gt=0)
    # The first restart's delay; each further crash doubles it, up to the cap.
    restart_first_seconds: float = Field(default=1.0, gt=0)
    restart_max_seconds: float = Field(default=30.0, gt=0)
    # A process that stayed up this long had recovered: its next crash starts again from the first delay.
    restart_reset_seconds: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _cap_above_first(self) -> SupervisorSettings:
        if self.restart_max_seconds < self.restart_first_seconds:
            raise ValueError("MAILLAGE_RESTART_MAX_SECONDS is below MAILLAGE_RESTART_FIRST_SECONDS")
        return self

    @property
    def backoff(self) -> Backoff:
        return Backoff(
            first=self.restart_first_seconds, cap=self.restart_max_seconds, reset_after=self.restart_reset_seconds
        )


@dataclass(frozen=True)
class Backoff:
    first: float
    cap: float
    reset_after: float

    def delay(self, crashes: int) -> float:
        """The wait before restarting a process after its `crashes`-th crash in a row."""
        return float(min(self.first * 2 ** min(crashes - 1, 32), self.cap))


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: should `maillage up` itself be SIGKILLed, the kernel sends
    # SIGTERM to its children, so even then none is left orphaned. The kernel ties this to the thread that
    # forked, which is why every launch happens on the supervisor's main thread.
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def launch(args: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
    """Start a supervised process: in its own session, so a terminal's Ctrl-C (SIGINT to the foreground process
    group) reaches the supervisor alone, which then stops each child in order; and dying with its parent."""
    options: dict[str, Any] = {
        "stdin": subprocess.DEVNULL,
        **popen,
        "start_new_session": True,
        "preexec_fn": _die_with_parent,
    }
    return subprocess.Popen(args, **options)


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


@dataclass(kw_only=True)
class Child:
    """One process kept running: `start` launches it again after a crash."""

    name: str
    start: Callable[[], subprocess.Popen[bytes]]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    # Crashes in a row, each without a long enough stay up in between; sets the next delay.
    crashes: int = 0
    restarts: int = 0
    restart_at: float | None = None

    def launch(self, *, now: float) -> None:
        self.process = self.start()
        self.started_at = now
        self.restart_at = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check(self, *, backoff: Backoff, now: float) -> None:
        """Notice a crash and schedule the restart, or restart when its time has come."""
        if self.restart_at is not None:
            if now >= self.restart_at:
                self._restart(backoff=backoff, now=now)
            return
        if self.process is None or (code := self.process.poll()) is None:
            return
        if now - self.started_at >= backoff.reset_after:
            self.crashes = 0
        self.crashes += 1
        delay = backoff.delay(self.crashes)
        self.restart_at = now + delay
        log.warning(
            "%s exited (%s); restarting in %g s",
            self.name,
            describe_exit(code),
            delay,
            extra={"child": self.name, "exit": describe_exit(code), "delay_seconds": delay, "crashes": self.crashes},
        )

    def _restart(self, *, backoff: Backoff, now: float) -> None:
        try:
            self.launch(now=now)
        except (OSError, RuntimeError) as exc:
            # Could not even start (a missing file, a broker whose jars are gone): wait longer, as for a crash.
            self.crashes += 1
            delay = backoff.delay(self.crashes)
            self.restart_at = now + delay
            log.error("%s could not be started (%s); trying again in %g s", self.name, type(exc).__name__, delay)
            return
        self.restarts += 1
        assert self.process is not None
        log.warning(
            "%s restarted (pid %d, restart %d)",
            self.name,
            self.process.pid,
            self.restarts,
            extra={"child": self.name, "pid": self.process.pid, "restarts": self.restarts},
        )


def supervise(children: Sequence[Child], *, backoff: Backoff, stopped: Callable[[], bool], every: float = 0.2) -> None:
    """Restart whatever exits until `stopped()`. Runs on the main thread (see `_die_with_parent`); `stopped` is
    a flag a signal handler sets: no lock there, which the handler could find held by the very thread it
    interrupted."""
    while not stopped():
        time.sleep(every)
        for child in children:
            # A signal may have come since the last look: whatever exits now is being stopped, not crashing.
            if stopped():
                return
            child.check(backoff=backoff, now=time.monotonic())


def stop_in_order(waves: Sequence[Sequence[Child]], *, seconds: float, every: float = 0.05) -> list[str]:
    """SIGTERM each wave once the one before it is gone (the services before the broker they flush to), or
    at its share of the deadline; SIGKILL whatever is left when `seconds` are up. Returns who was killed."""
    begun = time.monotonic()
    deadline = begun + seconds
    for number, wave in enumerate(waves):
        not_after = begun + seconds * number / len(waves)
        _wait_gone([c for earlier in waves[:number] for c in earlier], until=not_after, every=every)
        for child in wave:
            _signal_group(child, signal.SIGTERM)
    everyone = [c for wave in waves for c in wave]
    _wait_gone(everyone, until=deadline, every=every)
    killed = [c.name for c in everyone if c.running]
    for child in everyone:
        _signal_group(child, signal.SIGKILL)
        if child.process is not None:
            child.process.wait()
        child.restart_at = None
    return killed


def _wait_gone(children: Sequence[Child], *, until: float, every: float) -> None:
    while any(c.running for c in children) and time.monotonic() < until:
        time.sleep(every)


def _signal_group(child: Child, signum: int) -> None:
    # The child leads its own process group: signalling the group reaches anything it started in turn. Only
    # while it is not reaped: until then its id cannot have been given to another process.
    if child.process is None or child.process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.process.pid, signum)
