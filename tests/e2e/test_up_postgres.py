"""`maillage up --database postgres`: a PostgreSQL server of its own under the data directory, a database per
service, a referral delivered through them, and Ctrl-C stopping the server with the rest."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest

from maillage.cli.kafka_local import free_port
from maillage.cli.postgres_local import server_dir
from maillage.cli.up import database_name
from maillage.core.config.network import load_network
from maillage.core.crypto.keys import KeyDirs
from tests.e2e.test_cluster import CPAS, REFUGE, agency_client, refer, service_env, two_agency_network
from tests.processes import alive, children_of, maillage, wait_ready

pytestmark = pytest.mark.e2e


async def test_up_on_postgres_gives_each_service_its_database_and_delivers(tmp_path: Path) -> None:
    network_file = two_agency_network(tmp_path)
    network = load_network(network_file)
    data_dir = tmp_path / "var"
    began = time.monotonic()
    up = maillage(
        *("up", "--network", str(network_file), "--kafka-port", str(free_port()), "--database", "postgres"),
        *("--data-dir", str(data_dir)),
        env={},
        log=tmp_path / "up.log",
    )
    try:
        wait_ready(f"http://127.0.0.1:{network.gateway.port}", up, timeout=300)
        for agency in (REFUGE, CPAS):
            wait_ready(f"http://127.0.0.1:{network.agency(agency).port}", up, timeout=60)
        print(f"maillage up --database postgres: gateway and agencies ready in {time.monotonic() - began:.0f}s")
        started = children_of(up.pid)
        env = service_env(started, f"serve agency {CPAS}")
        # Its own database, on the server `up` runs; the password in a private file, never in the environment.
        assert env["MAILLAGE_DATABASE_URL"].startswith("postgresql+asyncpg://maillage@127.0.0.1:")
        assert env["MAILLAGE_DATABASE_URL"].endswith(f"/{database_name(CPAS)}")
        assert Path(env["PGPASSFILE"]).parent == data_dir / "keys" / "private"

        dirs = KeyDirs(private=data_dir / "keys" / "private", public=data_dir / "keys" / "public")
        async with (
            agency_client(network.agency(REFUGE).port, REFUGE, dirs) as refuge,
            agency_client(network.agency(CPAS).port, CPAS, dirs) as cpas,
        ):
            await refer(refuge, cpas)
        assert list(data_dir.glob("*.db")) == [], "no service fell back to SQLite"
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=90)
    assert up.returncode == 0
    assert [pid for pid in started if alive(pid)] == [], "Ctrl-C stops every process `up` started, PostgreSQL too"
    assert not (server_dir(data_dir) / "cluster" / "postmaster.pid").exists(), "the server shut down cleanly"
    shutil.rmtree(server_dir(data_dir))
