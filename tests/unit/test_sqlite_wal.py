"""Two processes opening a new SQLite database at once both turn it to WAL: the one SQLite answers "locked" at once
asks again, and starts, rather than failing (two gateways started together on one file)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from maillage.core.storage.repository import configure_sqlite


def test_a_connection_turns_the_database_to_wal_once_another_lets_go_of_it(tmp_path: Path) -> None:
    path = tmp_path / "service.db"
    other = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    other.execute("CREATE TABLE t (x INTEGER)")
    other.execute("BEGIN")
    other.execute("SELECT count(*) FROM t").fetchall()  # holds the read lock WAL's switch must wait for
    # No busy handler: SQLite's answer to the deadlock of two switches at once, "locked" without waiting.
    starting = sqlite3.connect(path, timeout=0, check_same_thread=False)
    released = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    released.start()
    try:
        configure_sqlite(starting, None)
    finally:
        released.join()

    assert starting.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert starting.execute("PRAGMA busy_timeout").fetchone() == (5000,)
    other.close()
    starting.close()
