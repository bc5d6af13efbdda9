"""Each service's schema under Alembic: its own revisions, applied at start-up and by `maillage db upgrade`.

One environment (this folder: env.py, the revision template) and one version location per service (its
`migrations/` folder): every service's database has its own history, so an agency's database never sees
another service's revisions, and `alembic_version` in it names that service's revision only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, Index, MetaData, Table, create_engine, inspect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from maillage.core.storage.db import writer
from maillage.core.storage.repository import take_migrations_lock

log = logging.getLogger(__name__)

ENVIRONMENT = Path(__file__).parent


@dataclass(frozen=True)
class Schema:
    """A service's tables and the folder of its revisions."""

    service: str
    tables: list[type[SQLModel]]
    versions: Path

    @property
    def metadata(self) -> MetaData:
        """The service's tables alone: SQLModel's metadata holds every service's."""
        chosen = MetaData()
        for table in self.tables:
            table.__table__.to_metadata(chosen)  # type: ignore[attr-defined]
        return chosen

    def config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(ENVIRONMENT))
        config.set_main_option("version_locations", str(self.versions))
        config.set_main_option("path_separator", "os")
        config.attributes["schema"] = self
        return config

    def head(self) -> str:
        """The latest revision: what every start-up brings the database to."""
        return str(ScriptDirectory.from_config(self.config()).get_current_head())

    def baseline(self) -> str:
        """The first revision: the schema as `create_all` made it before there were migrations."""
        return str(ScriptDirectory.from_config(self.config()).get_base())

    def baseline_shape(self) -> dict[str, set[str]]:
        """The baseline's tables, each with its column and index names: what a database made before migrations
        may lack and be given before it is stamped (what later revisions add, they add themselves)."""
        engine = create_engine("sqlite://")
        try:
            with engine.begin() as connection:
                config = self.config()
                config.attributes["connection"] = connection
                command.upgrade(config, self.baseline())
                found = inspect(connection)
                return {
                    table: {c["name"] for c in found.get_columns(table)}
                    | {str(i["name"]) for i in found.get_indexes(table)}
                    for table in found.get_table_names()
                    if table != "alembic_version"
                }
        finally:
            engine.dispose()


async def upgrade(engine: AsyncEngine, schema: Schema, *, to: str = "head") -> None:
    """Bring the database to `to`: a database `create_all` made (no `alembic_version`) is adopted first."""
    async with writer(engine).begin() as conn:
        await conn.run_sync(upgrade_connection, schema, to)


def upgrade_connection(connection: Connection, schema: Schema, to: str) -> None:
    """`upgrade` on a synchronous connection (Alembic's commands are synchronous)."""
    take_migrations_lock(connection)
    config = schema.config()
    config.attributes["connection"] = connection
    if _created_before_migrations(connection, schema):
        adopt(connection, schema)
        command.stamp(config, schema.baseline())
    command.upgrade(config, to)


def _created_before_migrations(connection: Connection, schema: Schema) -> bool:
    present = set(inspect(connection).get_table_names())
    return "alembic_version" not in present and bool(present & set(schema.metadata.tables))


def adopt(connection: Connection, schema: Schema) -> None:
    """Add to a `create_all` database what the baseline has and it lacks: `create_all` never added a column
    to a table that existed, so a database made by an older version misses the columns added since (the
    operators' work added some to the gateway's). Nothing is dropped or altered: rows stay as they are."""
    operations = Operations(MigrationContext.configure(connection))
    baseline = schema.baseline_shape()
    for diff in compare_metadata(MigrationContext.configure(connection), schema.metadata):
        if not isinstance(diff, tuple):
            continue  # a column's type or nullability as the database has it: left as it is
        kind, *rest = diff
        if kind == "add_table" and rest[0].name in baseline:
            _as_in_baseline(rest[0], baseline[rest[0].name]).create(connection)
        elif kind == "add_column" and rest[2].name in baseline.get(rest[1], ()):
            _, table, column = rest
            operations.add_column(table, _addable(column))
            log.info("migrations: added a missing column", extra={"table": table, "column": column.name})
        elif kind == "add_index" and isinstance(rest[0], Index) and _in(baseline, rest[0]):
            rest[0].create(connection)


def _as_in_baseline(table: Table, names: set[str]) -> Table:
    """The table as the baseline made it: what later revisions add to it, they add themselves."""
    made = Table(table.name, MetaData(), *(c._copy() for c in table.columns if c.name in names))
    for index in table.indexes:
        if str(index.name) in names:
            Index(index.name, *(made.c[c.name] for c in index.columns), unique=index.unique)
    return made


def _in(baseline: dict[str, set[str]], index: Index) -> bool:
    return index.table is not None and str(index.name) in baseline.get(index.table.name, set())


def _addable(column: Column[Any]) -> Column[Any]:
    """The column as ALTER TABLE can add it to a table with rows: NOT NULL only with a scalar default."""
    default = getattr(column.default, "arg", None)
    if isinstance(default, bool | int | str):
        literal = str(int(default)) if isinstance(default, bool) else str(default)
        return Column(column.name, column.type, nullable=column.nullable, server_default=literal)
    return Column(column.name, column.type, nullable=True)
