"""Each service's database under Alembic: a new one gets the models' schema, one made by `create_all` before
migrations (tests/fixtures/legacy, made by make_legacy_databases.py) is adopted with its rows, and the services
start on it."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from subprocess import PIPE, STDOUT
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, create_engine, inspect
from sqlmodel import Session, select
from typer.testing import CliRunner

from maillage.cli.main import app as cli
from maillage.core.crypto.tokens import Scope
from maillage.core.storage.db import make_engine
from maillage.core.storage.migrations import Schema, upgrade
from maillage.dispatcher.models import Paging
from maillage.gateway.app import create_app as create_gateway_app
from maillage.gateway.settings import GatewaySettings
from tests.fixtures import make_legacy_databases as legacy
from tests.support import Pole, serving

pytestmark = pytest.mark.integration

LEGACY = Path(legacy.__file__).parent / "legacy"
SERVICES = ["agency", "gateway", "dispatcher", "monitor"]


def schema_of(service: str) -> Schema:
    from maillage.cli.db import Service, schema_of

    return schema_of(Service(service))


def legacy_copy(service: str, tmp_path: Path) -> Path:
    return Path(shutil.copy(LEGACY / f"{service}.db", tmp_path / f"{service}.db"))


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def state_of(url: str, schema: Schema) -> tuple[str | None, list[Any]]:
    """The database's revision, and what its schema lacks or has other than the models declare."""

    def read(conn: Connection) -> tuple[str | None, list[Any]]:
        context = MigrationContext.configure(conn)
        return context.get_current_revision(), compare_metadata(context, schema.metadata)

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(read)
    finally:
        await engine.dispose()


def rows_of(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        tables = [name for (name,) in db.execute("select name from sqlite_master where type = 'table'")]
        return {t: db.execute(f'select count(*) from "{t}"').fetchone()[0] for t in tables if t != "alembic_version"}


@pytest.mark.postgresql
@pytest.mark.parametrize("service", SERVICES)
async def test_a_new_database_gets_the_schema_its_models_declare(
    service: str, databases: Callable[[str], str | None], tmp_path: Path
) -> None:
    schema, url = schema_of(service), databases(service) or sqlite_url(tmp_path / f"{service}.db")
    engine = make_engine(url)
    await upgrade(engine, schema)
    await engine.dispose()

    assert await state_of(url, schema) == (schema.head(), [])


@pytest.mark.postgresql
async def test_two_processes_starting_together_on_a_new_database_migrate_it_once(
    databases: Callable[[str], str | None], tmp_path: Path
) -> None:
    schema = schema_of("gateway")
    url = databases("gateway") or sqlite_url(tmp_path / "gateway.db")
    command = [sys.executable, "-m", "maillage.cli.main", "db", "upgrade", "--service", "gateway", "--database", url]
    both = [await asyncio.create_subprocess_exec(*command, stdout=PIPE, stderr=STDOUT) for _ in range(2)]
    outputs = await asyncio.gather(*(p.communicate() for p in both))

    assert [p.returncode for p in both] == [0, 0], [out.decode()[-2000:] for out, _ in outputs]
    assert await state_of(url, schema) == (schema.head(), [])


@pytest.mark.parametrize("service", SERVICES)
async def test_a_database_made_before_migrations_is_stamped_and_keeps_its_rows(service: str, tmp_path: Path) -> None:
    path, schema = legacy_copy(service, tmp_path), schema_of(service)
    before = rows_of(path)
    engine = make_engine(sqlite_url(path))
    await upgrade(engine, schema)
    await upgrade(engine, schema)  # and again, as every start-up does: nothing more happens
    await engine.dispose()

    assert await state_of(sqlite_url(path), schema) == (schema.head(), [])
    after = rows_of(path)
    replaced = {"oncall_page": "oncall_paging"}  # a revision moved its rows (its own test below)
    assert {table: after[replaced.get(table, table)] for table in before} == before
    assert not any(after[table] for table in after.keys() - before.keys()), "tables added since start empty"
    assert before.keys() - after.keys() <= replaced.keys()
    assert sum(before.values()) > 0 or service == "dispatcher"


async def test_a_column_an_older_gateway_lacked_is_added_and_its_rows_kept(tmp_path: Path) -> None:
    path, schema = legacy_copy("gateway", tmp_path), schema_of("gateway")
    with sqlite3.connect(path) as db:  # the gateway before consents named their disclosers, and before notices
        db.execute("alter table gateway_grant drop column disclosers")
        db.execute("drop table gateway_notice")
    engine = make_engine(sqlite_url(path))
    await upgrade(engine, schema)
    async with engine.connect() as conn:
        columns = await conn.run_sync(lambda c: [col["name"] for col in inspect(c).get_columns("gateway_grant")])
    await engine.dispose()

    assert "disclosers" in columns
    assert await state_of(sqlite_url(path), schema) == (schema.head(), [])
    with sqlite3.connect(path) as db:
        assert db.execute("select consent_id, disclosers from gateway_grant").fetchall() == [(legacy.CONSENT, None)]


def test_maillage_db_upgrade_brings_a_service_database_to_its_latest_revision(tmp_path: Path) -> None:
    path = legacy_copy("monitor", tmp_path)
    result = CliRunner().invoke(cli, ["db", "upgrade", "--service", "monitor", "--database", sqlite_url(path)])

    assert result.exit_code == 0, result.output
    assert f"at revision {schema_of('monitor').head()}" in result.output
    with sqlite3.connect(path) as db:
        assert db.execute("select version_num from alembic_version").fetchall() == [(schema_of("monitor").head(),)]


async def test_an_agency_starts_on_its_database_made_before_migrations(pole: Pole, tmp_path: Path) -> None:
    path = legacy_copy("agency", tmp_path)
    agency = await pole.start_agency("refuge-liege", database_url=sqlite_url(path))

    referral = await agency.get(f"/v1/referrals/{legacy.REFERRAL}")
    consents = await agency.get("/v1/consents", params={"subject_ref": legacy.SUBJECT})

    assert referral.status_code == 200, referral.text
    assert referral.json()["state"] == "sent"
    assert [c["consent_id"] for c in consents.json()] == [legacy.CONSENT]


async def test_the_gateway_audit_chain_made_before_migrations_still_verifies(pole: Pole, tmp_path: Path) -> None:
    path = legacy_copy("gateway", tmp_path)
    settings = GatewaySettings(**pole.common(), transactional_id=f"{pole.prefix}gateway", database_url=sqlite_url(path))
    token = pole.token("refuge-liege", (Scope.AUDIT_READ,))
    async with serving(create_gateway_app(settings), token=token) as gateway:
        report = (await gateway.get("/v1/audit/verify")).json()

    assert report["intact"] is True
    assert report["records"] == legacy.AUDITED


async def test_who_was_paged_survives_the_revision_that_keeps_one_row_per_paging(tmp_path: Path) -> None:
    path, schema = tmp_path / "dispatcher.db", schema_of("dispatcher")
    engine = make_engine(sqlite_url(path))
    await upgrade(engine, schema, to="0b319d265b12")  # one row per worker paged
    at, later = "2026-11-30 08:00:00.000000", "2026-11-30 08:05:00.000000"
    pages = [("police", "a1", 1, "w1", at), ("police", "a1", 1, "w2", at), ("police", "a1", 2, "w3", later)]
    pages.append(("cpas", "a2", 1, "w1", at))
    with sqlite3.connect(path) as db:
        db.executemany(
            "insert into oncall_page (agency_id, alert_id, level, worker, paged_at) values (?,?,?,?,?)", pages
        )

    await upgrade(engine, schema)
    async with engine.connect() as conn:
        paged = await conn.run_sync(_paged)
    await engine.dispose()

    assert await state_of(sqlite_url(path), schema) == (schema.head(), [])
    assert paged == {("police", "a1"): {"w1", "w2", "w3"}, ("cpas", "a2"): {"w1"}}
    with sqlite3.connect(path) as db:
        rows = db.execute("select agency_id, alert_id, level, workers from oncall_paging").fetchall()
    assert sorted((a, b, c, json.loads(w)) for a, b, c, w in rows) == [
        ("cpas", "a2", 1, ["w1"]),
        ("police", "a1", 1, ["w1", "w2"]),
        ("police", "a1", 2, ["w3"]),
    ]

    _downgrade(path, schema, to="0b319d265b12")  # and back: one row per worker again
    with sqlite3.connect(path) as db:
        back = db.execute("select agency_id, alert_id, level, worker from oncall_page").fetchall()
    assert sorted(back) == sorted(page[:4] for page in pages)


def _paged(connection: Connection) -> dict[tuple[str, str], set[str]]:
    """Who was paged for each alert, as the dispatcher reads it when it starts."""
    found: dict[tuple[str, str], set[str]] = {}
    with Session(connection) as session:
        for paging in session.exec(select(Paging)).all():
            found.setdefault((paging.agency_id, paging.alert_id), set()).update(paging.workers)
    return found


def _downgrade(path: Path, schema: Schema, *, to: str) -> None:
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            config = schema.config()
            config.attributes["connection"] = connection
            command.downgrade(config, to)
    finally:
        engine.dispose()
