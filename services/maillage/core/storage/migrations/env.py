"""Alembic's entry point: runs a service's revisions on the connection `maillage` hands it (see __init__.py)."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

from maillage.core.storage.migrations import Schema


def _render(kind: str, item: Any, autogen: AutogenContext) -> str | Literal[False]:
    """sqlmodel's types as the DDL they are (VARCHAR; TIMESTAMP WITH TIME ZONE): a revision names SQLAlchemy's
    and imports no sqlmodel, whose Python side (aware datetimes in, UTC out) is the models' business."""
    if kind == "type" and isinstance(item, AutoString):
        return "sa.String()"
    if kind == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


config = context.config
schema: Schema = config.attributes["schema"]
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the migrations with `maillage db upgrade`: it opens the service's database")
# SQLite alters a table by copying it (batch mode); a revision written so runs on PostgreSQL as well.
context.configure(connection=connection, target_metadata=schema.metadata, render_as_batch=True, render_item=_render)
with context.begin_transaction():
    context.run_migrations()
