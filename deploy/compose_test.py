"""`make compose-test`: the compose deployment built and started here, the demo played against it while one
broker and one gateway are stopped, the results and the audit chains checked; then everything torn down.

No image registry is reachable here: the base image is made from Debian with debootstrap and imported, and
the Dockerfile builds on it (`MAILLAGE_BASE_IMAGE`). The Docker engine is started if none runs (`dockerd
--bridge=none --iptables=false`: the containers use the host's network, every address 127.0.0.1).

Exit 0 when everything held; otherwise the step that failed, and the logs of every container in
var/compose/logs/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "var" / "compose"
BASE_IMAGE = "maillage-base:bookworm"
PROJECT = "maillage-compose-test"
MIRROR = "http://deb.debian.org/debian"
# What the demo prints when each of its steps got its answer (cli/demo.py).
DEMO_MILESTONES = [
    "Consent registered",
    "is paged live and acknowledges",
    "The CPAS accepts the referral",
    "A second professional of refuge-liege reads the justification",
    "consults the Pôle's desk",
    "One call: exactly those deliveries erased",
    "asks every holder to:",
]


def say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def run(
    *command: str, check: bool = True, capture: bool = False, **options: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=check, text=True, capture_output=capture, **options)  # type: ignore[call-overload, no-any-return]


def compose(
    *args: str, check: bool = True, capture: bool = False, timeout: float = 1800
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAILLAGE_BASE_IMAGE": BASE_IMAGE, "COMPOSE_DOCKER_CLI_BUILD": "0"}
    return run(
        "docker-compose",
        "-p",
        PROJECT,
        "-f",
        str(ROOT / "docker-compose.yml"),
        *args,
        check=check,
        capture=capture,
        env=env,
        cwd=ROOT,
        timeout=timeout,
    )


def ensure_engine() -> None:
    if run("docker", "info", check=False, capture=True).returncode == 0:
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        sys.exit("no dockerd: install Debian's docker.io (the Makefile's compose-deps does)")
    say("starting dockerd (--bridge=none --iptables=false)")
    WORK.mkdir(parents=True, exist_ok=True)
    log = (WORK / "dockerd.log").open("ab")
    subprocess.Popen(
        [dockerd, "--bridge=none", "--iptables=false", "--ip6tables=false"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while run("docker", "info", check=False, capture=True).returncode != 0:
        if time.monotonic() > deadline:
            sys.exit(f"dockerd did not answer in 60 s: {WORK / 'dockerd.log'}")
        time.sleep(1)


def ensure_base_image() -> None:
    if run("docker", "image", "inspect", BASE_IMAGE, check=False, capture=True).returncode == 0:
        return
    say(f"making {BASE_IMAGE} with debootstrap (about a minute)")
    with tempfile.TemporaryDirectory(prefix="rootfs-") as rootfs:
        run("debootstrap", "--variant=minbase", "bookworm", rootfs, MIRROR, capture=True)
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        run("docker", "import", "-", BASE_IMAGE, stdin=tar.stdout, capture=True)
        tar.wait()


def copy_extra_cas() -> None:
    """This machine's extra CAs into the build context: what lets it reach PyPI and Maven Central lets the
    image's build reach them too."""
    for crt in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        shutil.copy(crt, ROOT / "deploy" / "ca-certificates" / crt.name)


def wait_healthy(timeout: float) -> None:
    """Every long-running container healthy (the one-shot ones exited 0)."""
    deadline = time.monotonic() + timeout
    while True:
        ids = compose("ps", "-q", capture=True).stdout.split()
        states = [
            json.loads(run("docker", "inspect", "--format", "{{json .State}}", i, capture=True).stdout) for i in ids
        ]
        failed = [s for s in states if s["Status"] == "exited" and s["ExitCode"] != 0]
        if failed:
            raise RuntimeError(f"{len(failed)} container(s) exited with an error")
        # Anything but healthy-and-running or done-with-0 (starting, restarting, created) is still waited for.
        waiting = [
            s
            for s in states
            if not (s["Status"] == "running" and s.get("Health", {}).get("Status") == "healthy")
            and not (s["Status"] == "exited" and s["ExitCode"] == 0)
        ]
        if ids and not waiting:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(waiting)} container(s) not healthy after {timeout:.0f} s")
        time.sleep(3)


def play_demo_with_faults() -> str:
    """The demo, with kafka-2 and gateway-2 stopped as soon as its first step (the consent) is through: every
    referral, the alert and its acknowledgement, the review, the consultation and the case conference go
    through one broker and one gateway fewer. Its output."""
    env = {**os.environ, "MAILLAGE_BASE_IMAGE": BASE_IMAGE}
    command = ["docker-compose", "-p", PROJECT, "-f", str(ROOT / "docker-compose.yml"), "run", "--rm", "-T", "demo"]
    demo = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    assert demo.stdout is not None
    faults: threading.Thread | None = None
    lines: list[str] = []
    timer = threading.Timer(600, demo.kill)  # a demo that hangs ends the test, not the CI run
    timer.start()
    try:
        for line in demo.stdout:
            print(line, end="", flush=True)
            lines.append(line)
            if faults is None and "Consent registered" in line:
                say("stopping kafka-2 and gateway-2 while the demo runs")
                faults = threading.Thread(target=compose, args=("stop", "-t", "10", "kafka-2", "gateway-2"))
                faults.start()
        code = demo.wait()
    finally:
        timer.cancel()
    if faults is None:
        raise RuntimeError("the demo never registered its consent: no fault was injected")
    faults.join(timeout=120)
    output = "".join(lines)
    if code != 0:
        raise RuntimeError(f"the demo failed (exit {code})")
    printed = " ".join(output.split())  # whatever the terminal's width wrapped
    missing = [m for m in DEMO_MILESTONES if m not in printed]
    if missing:
        raise RuntimeError(f"the demo's output lacks: {missing}")
    return output


def verify_audit() -> str:
    script = (
        "MAILLAGE_TOKEN=$(maillage token --agency refuge-liege --scope audit:read --data-dir / "
        "--network $MAILLAGE_NETWORK_FILE) maillage audit verify --network $MAILLAGE_NETWORK_FILE --full"
    )
    done = compose(
        "run", "--rm", "-T", "--entrypoint", "sh", "demo", "-c", script, check=False, capture=True, timeout=600
    )
    print(done.stdout, flush=True)
    if done.returncode != 0 or "intact" not in done.stdout:
        raise RuntimeError(f"the audit chains did not verify (exit {done.returncode}): {done.stderr[-1000:]}")
    return done.stdout


def save_logs() -> None:
    logs = WORK / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for line in compose("ps", "--services", capture=True, check=False).stdout.split():
        out = compose("logs", "--no-color", line, capture=True, check=False)
        (logs / f"{line}.log").write_text(out.stdout + out.stderr)


def main() -> int:
    began = time.monotonic()
    ensure_engine()
    ensure_base_image()
    copy_extra_cas()
    say("building the image from the Dockerfile")
    compose("build")
    compose("down", "-v", "--remove-orphans", check=False, capture=True)
    try:
        say("starting the stack: 3 brokers, PostgreSQL, 2 gateways, 10 agencies, the dispatcher, the monitor")
        compose("up", "-d", timeout=900)
        wait_healthy(timeout=900)
        say(f"every service healthy ({time.monotonic() - began:.0f} s since the start)")
        play_demo_with_faults()
        say("the demo held with one broker and one gateway stopped")
        compose("start", "kafka-2", "gateway-2")
        wait_healthy(timeout=300)
        verify_audit()
        say(f"compose test passed in {time.monotonic() - began:.0f} s")
        return 0
    except (RuntimeError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        say(f"compose test FAILED: {exc}")
        return 1
    finally:
        save_logs()
        compose("down", "-v", "--remove-orphans", check=False, capture=True)


if __name__ == "__main__":
    sys.exit(main())
