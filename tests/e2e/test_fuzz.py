"""`maillage fuzz` against the whole network as `maillage up` starts it: generated requests (schemathesis) to each
service with a valid token, 0 answers 5xx, 0 answers outside the published schema, webhooks only to loopback."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path

import httpx
import pytest
import tomli_w

from maillage.cli.fuzz import LOOPBACK_URLS, network_targets, require_loopback
from maillage.cli.kafka_local import free_port
from maillage.core.config.network import Network, load_network
from maillage.core.crypto.keys import KeyDirs
from tests.processes import maillage, network_copy, wait_ready

pytestmark = pytest.mark.e2e

REQUESTS = 200
# One agency stands for all: they run the same code; the others would multiply the time, not the coverage.
AGENCY = "refuge-liege"


def with_loopback_receivers(network_file: Path) -> None:
    """Allow-list the loopback destinations the fuzzer's webhook URLs name, so that registrations succeed
    too (and their deliveries, if any, stay on this machine: nothing listens on port 9), and nothing else:
    a test network calls no public address and resolves no name."""
    doc = tomllib.loads(network_file.read_text())
    allowed = {(h.strip("[]"), 9) for h in (httpx.URL(u).host for u in LOOPBACK_URLS)}
    doc["webhooks"] = {"public": False, "allow": [{"host": host, "port": port} for host, port in sorted(allowed)]}
    network_file.write_bytes(tomli_w.dumps(doc).encode())


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Network, Path, Path]]:
    root = tmp_path_factory.mktemp("fuzz")
    network_file = network_copy(root, prefix=f"fz{uuid.uuid4().hex[:8]}.")
    with_loopback_receivers(network_file)
    network = load_network(network_file)
    up = maillage(
        "up",
        *("--network", str(network_file), "--kafka-port", str(free_port()), "--data-dir", str(root / "var")),
        *("--shutdown-seconds", "4"),
        env={},
        log=root / "up.log",
        own_group=True,
    )
    try:
        wait_ready(f"http://127.0.0.1:{network.gateway.port}", up, timeout=150)
        for target in network_targets(network, agencies=(AGENCY,)):
            wait_ready(target.base_url, up, timeout=30)
        yield network, network_file, root / "var"
    finally:
        os.killpg(up.pid, signal.SIGINT)
        up.wait(timeout=60)


def test_generated_requests_get_no_5xx_and_no_answer_outside_the_schema(running: tuple[Network, Path, Path]) -> None:
    network, network_file, data_dir = running
    done = subprocess.run(
        [
            *(sys.executable, "-m", "maillage.cli.main", "fuzz", "--network", str(network_file)),
            *("--data-dir", str(data_dir), "--requests", str(REQUESTS), "--agency", AGENCY, "--seed", "12"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {
        m["service"]: (int(m["requests"]), int(m["errors"]), int(m["violations"]))
        for m in re.finditer(
            r"│ (?P<service>\S+)\s+│\s+\d+ │\s+(?P<requests>\d+) │\s+(?P<errors>\d+) │\s+(?P<violations>\d+) │",
            done.stdout,
        )
    }
    assert set(rows) == {f"agency:{AGENCY}", "gateway", "dispatcher", "monitor"}, done.stdout
    for service, (requests, errors, violations) in rows.items():
        assert requests >= REQUESTS and (errors, violations) == (0, 0), f"{service}: {done.stdout}"
    # Registrations the generated requests made name loopback literals only, never a generated host.
    target = next(t for t in network_targets(network, agencies=(AGENCY,)) if t.service == f"agency:{AGENCY}")
    dirs = KeyDirs(private=data_dir / "keys" / "private", public=data_dir / "keys" / "public")
    listed = httpx.get(
        f"{target.base_url}/v1/webhooks", headers={"Authorization": f"Bearer {target.token(dirs)}"}, timeout=10
    )
    hosts = {httpx.URL(w["url"]).host for w in listed.json()}
    assert hosts and all(ip_address(h).is_loopback for h in hosts), hosts


def test_the_fuzzer_refuses_any_target_but_a_loopback_literal() -> None:
    require_loopback("http://127.0.0.1:8000")
    require_loopback("http://[::1]:8000")
    for url in ("http://localhost:8000", "http://fuzz.example:8000", "http://10.0.0.1:8000"):
        with pytest.raises(ValueError, match="loopback"):
            require_loopback(url)
