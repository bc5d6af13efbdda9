"""Two dispatchers on one PostgreSQL database: each alert whose time ran out is escalated by one of them, once."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from maillage.cli.postgres_local import LocalPostgres
from maillage.core.messaging.envelope import new_subject_ref
from maillage.core.outbox.models import OutboxRecord
from maillage.core.storage.db import make_engine, session_factory, unit_of_work
from maillage.core.storage.migrations import upgrade
from maillage.dispatcher.models import SCHEMA, OncallAlert
from maillage.domain.escalation import AlertState
from maillage.domain.events import EventType
from tests.oncall import POLICE, WEDNESDAY_10H, oncall_network
from tests.support import Pole

pytestmark = pytest.mark.integration

ALERTS = 60
DEADLINE = WEDNESDAY_10H + timedelta(minutes=1)
LATER = WEDNESDAY_10H + timedelta(minutes=2)  # past every level-1 deadline, well within the restart grace


async def claimer(settings: dict[str, str]) -> asyncio.subprocess.Process:
    """A dispatcher process (tests/escalation_claimer.py) on a clock past the deadlines, ready for its turn."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.escalation_claimer",
        json.dumps(settings),
        LATER.isoformat(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    assert process.stdout is not None
    async with asyncio.timeout(120):
        assert (await process.stdout.readline()).strip() == b"ready"
    return process


async def turn(process: asyncio.subprocess.Process) -> None:
    assert process.stdin is not None and process.stdout is not None
    async with asyncio.timeout(120):
        assert (await process.stdout.readline()).strip() == b"done"
        assert await process.wait() == 0


async def seed_due_alerts(url: str) -> list[str]:
    """Alerts at level 1 whose deadline runs out at DEADLINE, as the dispatcher stores them."""
    engine = make_engine(url)
    await upgrade(engine, SCHEMA)
    alerts = [str(uuid.uuid4()) for _ in range(ALERTS)]
    async with unit_of_work(session_factory(engine)) as session:
        for alert_id in alerts:
            session.add(
                OncallAlert(
                    agency_id=POLICE,
                    alert_id=alert_id,
                    source_agency="refuge-liege",
                    subject_ref=new_subject_ref(),
                    subject_role="victim",
                    severity="imminent",
                    kind="threat",
                    data={},
                    raised_at=WEDNESDAY_10H,
                    received_at=WEDNESDAY_10H,
                    state=AlertState.OPEN,
                    level_started_at=WEDNESDAY_10H,
                    deadline=DEADLINE,
                )
            )
    await engine.dispose()
    return alerts


async def escalations(url: str) -> tuple[list[int], int]:
    """Each alert's level, and how many `alert.escalated` events the dispatchers wrote for their senders."""
    engine = make_engine(url)
    try:
        async with session_factory(engine)() as session:
            levels = (await session.exec(select(OncallAlert.level).order_by(col(OncallAlert.alert_id)))).all()
            headers = (await session.exec(select(OutboxRecord.headers))).all()
    finally:
        await engine.dispose()
    return list(levels), sum(EventType.ALERT_ESCALATED.value.encode() in h for h in headers)


async def test_two_dispatchers_escalate_each_due_alert_exactly_once(
    pole: Pole, postgres: LocalPostgres, tmp_path: Path
) -> None:
    pole.network_file = oncall_network(tmp_path / "net", grace=3600)
    url = postgres.create_database(f"{pole.prefix}dispatcher")
    alerts = await seed_due_alerts(url)
    settings = {k: str(v) for k, v in pole.common().items()} | {"database_url": url}

    claimers = [await claimer(settings) for _ in range(2)]
    try:
        for process in claimers:  # both turn to the same due alerts in the same moment
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            process.stdin.close()
        await asyncio.gather(*(turn(p) for p in claimers))
    finally:
        for process in claimers:
            if process.returncode is None:
                process.kill()
                await process.wait()
    levels, told = await escalations(url)

    assert len(alerts) == ALERTS and levels == [2] * ALERTS
    assert told == ALERTS  # one `alert.escalated` for each: none twice, none missed
    postgres.psql(f'DROP DATABASE "{pole.prefix}dispatcher" WITH (FORCE)')
