"""A busy path's new rows go in by a plain INSERT (`insert_rows`; on the event loop's SQLite connection, handed to
`sqlite3` itself: `plain_insert`), not through the ORM's unit of work: they must read back exactly as `session.add`
would have written them, and be stored as it stores them — every field left out taking the model's default, a
numbered key numbered — on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import SQLModel, select

from maillage.agency import models
from maillage.core.outbox.models import OutboxRecord
from maillage.core.storage.db import make_engine, session_factory, unit_of_work
from maillage.core.storage.migrations import upgrade
from maillage.core.storage.repository import insert_rows

pytestmark = pytest.mark.integration

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)

# What a referral's sender writes, the status lines it stores, what its recipient stores: every field with a
# default left out.
ROWS: list[tuple[type[SQLModel], str, dict[str, Any]]] = [
    (OutboxRecord, "event_id", {"topic": "t", "key": b"k", "value": b"\x00v", "headers": b"[]", "created_at": AT}),
    (
        models.SentEvent,
        "event_id",
        {"type": "referral.created", "subject_ref": "s", "recipients": ["cpas-seraing"], "legal_basis": "consent"}
        | {"created_at": AT},
    ),
    (
        models.ReferralRow,
        "referral_id",
        {"direction": "out", "counterpart": "cpas-seraing", "subject_ref": "s", "subject_role": "victim"}
        | {"state": models.ReferralState.SENT, "updated_at": AT},
    ),
    (
        models.IdempotencyRecord,
        "key",
        {"request_hash": "h", "status_code": 201, "response": {"state": "sent"}, "created_at": AT},
    ),
    (models.RecipientStatus, "event_id", {"recipient": "cpas-seraing", "outcome": "delivered", "decided_at": AT}),
    (
        models.InboxItem,
        "event_id",
        {"type": "referral.created", "source_agency": "refuge-liege", "subject_ref": "s", "subject_role": "victim"}
        | {"legal_basis": "consent", "purpose": "referral", "sent_at": AT, "received_at": AT, "data": {"a": [1]}},
    ),
]


@pytest.mark.postgresql
@pytest.mark.parametrize(("model", "name", "values"), ROWS, ids=[m.__name__ for m, _, _ in ROWS])
async def test_rows_inserted_plainly_read_back_as_the_orm_writes_them(
    model: type[SQLModel],
    name: str,
    values: dict[str, Any],
    databases: Callable[[str], str | None],
    tmp_path: Path,
) -> None:
    table = model.__table__  # type: ignore[attr-defined]
    [key] = table.primary_key.columns
    engine = make_engine(databases("agency") or f"sqlite+aiosqlite:///{tmp_path / 'agency.db'}")
    await upgrade(engine, models.SCHEMA)
    sessions = session_factory(engine)
    try:
        async with unit_of_work(sessions) as session:
            session.add(model(**{name: "by-the-orm"}, **values))
            await session.flush()
            await insert_rows(session, model, [{name: "plain-1", **values}, {name: "plain-2", **values}])
        async with sessions() as session:
            read = {getattr(row, name): row for row in (await session.exec(select(model))).all()}
            # And as the database holds them, below the ORM's types: a date stored in another format would read back
            # the same, and sort otherwise in a query's comparison.
            stored = (await (await session.connection()).exec_driver_sql(f"SELECT * FROM {table.name}")).mappings()
            held = [{k: v for k, v in row.items() if k not in (name, key.name)} for row in stored.all()]
    finally:
        await engine.dispose()

    assert sorted(read) == ["by-the-orm", "plain-1", "plain-2"]
    assert len(held) == 3 and held[0] == held[1] == held[2]
    columns = [row.model_dump(exclude={name, key.name}) for row in read.values()]
    assert columns[0] == columns[1] == columns[2]
    if key.name != name:
        numbers = [getattr(row, key.name) for row in read.values()]
        assert all(isinstance(n, int) for n in numbers) and len(set(numbers)) == 3, "numbered by the database"
