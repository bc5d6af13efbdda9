"""`maillage up`'s supervision on plain processes: restarts with backoff, the stop deadline, no orphan."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from maillage.cli.supervision import (
    Backoff,
    Child,
    SupervisorSettings,
    describe_exit,
    launch,
    stop_in_order,
    supervise,
)
from tests.processes import alive

pytestmark = pytest.mark.integration

# A process that says when it is ready to be signalled, then behaves as `on_term` says on SIGTERM.
SCRIPT = """
import signal, sys, time
mode, mark = sys.argv[1], sys.argv[2]
def term(*_):
    if mode == "slow":
        time.sleep(0.3)
    open(mark, "a").write(f"{time.monotonic()}\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "stubborn" else term)
print("ready", flush=True)
time.sleep(120)
"""


def until(probe, *, timeout: float, every: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(every)
    raise AssertionError(f"not within {timeout}s")


def crashing(code: int = 3) -> Child:
    return Child(name="crasher", start=lambda: launch([sys.executable, "-c", f"raise SystemExit({code})"]))


def waiting(name: str, mode: str, mark: Path) -> Child:
    child = Child(
        name=name, start=lambda: launch([sys.executable, "-c", SCRIPT, mode, str(mark)], stdout=subprocess.PIPE)
    )
    child.launch(now=time.monotonic())
    assert child.process is not None and child.process.stdout is not None
    assert child.process.stdout.readline() == b"ready\n"
    return child


def test_a_crashing_process_is_restarted_with_doubling_delays_never_in_a_tight_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="maillage.up")
    child = crashing()
    child.launch(now=time.monotonic())
    end = time.monotonic() + 3.0
    supervise(
        [child], backoff=Backoff(first=0.2, cap=0.8, reset_after=60), stopped=lambda: time.monotonic() > end, every=0.05
    )
    assert child.process is not None
    child.process.wait()

    delays = [r.delay_seconds for r in caplog.records if hasattr(r, "delay_seconds")]  # type: ignore[attr-defined]
    assert delays[:4] == [0.2, 0.4, 0.8, 0.8], "doubling from the first delay, then capped"
    assert 3 <= child.restarts <= 5, "about one start per delay over 3 s, whatever the crash rate"
    said = [r.getMessage() for r in caplog.records]
    assert "crasher exited (exit code 3); restarting in 0.2 s" in said
    assert any(m.startswith("crasher restarted (pid ") for m in said)


def test_the_backoff_starts_again_once_the_process_stayed_up_long_enough() -> None:
    backoff = Backoff(first=1, cap=30, reset_after=60)
    child = crashing()
    child.launch(now=0)

    def crash_seen_at(now: float) -> float | None:
        assert child.process is not None
        child.process.wait()
        child.check(backoff=backoff, now=now)
        return child.restart_at

    assert crash_seen_at(0.5) == 1.5
    child.check(backoff=backoff, now=1.5)  # restarted
    assert crash_seen_at(2.0) == 4.0, "a second crash soon after: twice the delay"
    child.check(backoff=backoff, now=4.0)
    assert crash_seen_at(4.0 + 61) == 4.0 + 61 + 1, "up for longer than reset_after: back to the first delay"
    assert [backoff.delay(n) for n in (1, 2, 3, 5, 6, 100)] == [1, 2, 4, 16, 30, 30]


def test_an_exit_is_described_by_its_code_or_signal() -> None:
    assert describe_exit(-signal.SIGKILL) == "signal SIGKILL"
    assert describe_exit(2) == "exit code 2"


def test_stop_terminates_the_services_before_the_broker_and_kills_at_the_deadline(tmp_path: Path) -> None:
    slow, stubborn, broker = (
        waiting("slow", "slow", tmp_path / "slow"),
        waiting("stubborn", "stubborn", tmp_path / "stubborn"),
        waiting("broker", "polite", tmp_path / "broker"),
    )
    begun = time.monotonic()
    killed = stop_in_order([[slow, stubborn], [broker]], seconds=1.5)
    took = time.monotonic() - begun

    assert killed == ["stubborn"]
    assert 1.5 <= took < 2.5, "SIGKILL at the deadline, not before, not much after"
    assert [c.process.returncode for c in (slow, stubborn, broker) if c.process] == [0, -signal.SIGKILL, 0]
    assert float((tmp_path / "broker").read_text()) > float((tmp_path / "slow").read_text()), "services first"


def test_no_child_outlives_a_supervisor_killed_with_sigkill() -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from maillage.cli.supervision import launch\n"
            "child = launch([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert alive(child)
    parent.kill()
    parent.wait()
    until(lambda: not alive(child), timeout=5)


def test_the_shutdown_deadline_is_ten_seconds_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SupervisorSettings().shutdown_seconds == 10
    monkeypatch.setenv("MAILLAGE_SHUTDOWN_SECONDS", "2.5")
    assert SupervisorSettings().shutdown_seconds == 2.5
    monkeypatch.setenv("MAILLAGE_RESTART_MAX_SECONDS", "0.5")
    with pytest.raises(ValueError, match="RESTART_MAX_SECONDS"):
        SupervisorSettings()
