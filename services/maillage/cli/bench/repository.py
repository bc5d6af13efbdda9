"""The bench's only queries: what the services stored in their own SQLite files, read while they run.

Read-only connections by table name rather than the services' models: the bench reads another process's
database and must neither create nor migrate anything in it.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path


def gateway_outcomes(data_dir: Path) -> dict[str, int]:
    """How many decisions the gateway recorded, per outcome."""
    with closing(sqlite3.connect(data_dir / "gateway.db")) as conn:
        rows = conn.execute("select outcome, count(*) from gateway_audit group by outcome").fetchall()
    return {str(outcome): int(count) for outcome, count in rows}


def sender_stored(data_dir: Path, *, agency: str) -> dict[str, datetime]:
    """event_id → when the sending agency stored the event it was asked to send."""
    return _times(data_dir / f"agency-{agency}.db", "select event_id, created_at from sent_event")


def gateway_decided(data_dir: Path) -> dict[str, datetime]:
    """event_id → when the gateway decided the event."""
    return _times(data_dir / "gateway.db", "select event_id, decided_at from gateway_processed")


def inbox_received(data_dir: Path, *, agency: str) -> dict[str, datetime]:
    """event_id → when the recipient agency stored the event in its inbox."""
    return _times(data_dir / f"agency-{agency}.db", "select event_id, received_at from inbox")


def dispatcher_received(data_dir: Path) -> dict[str, datetime]:
    """alert_id → when the dispatcher stored the alert."""
    return _times(data_dir / "dispatcher.db", "select alert_id, received_at from oncall_alert")


def _times(db: Path, query: str) -> dict[str, datetime]:
    if not db.exists():  # the service has not created it yet
        return {}
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute(query).fetchall()
    return {str(key): _utc(value) for key, value in rows}


def _utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
