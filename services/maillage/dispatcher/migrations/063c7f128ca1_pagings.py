"""Pagings: one row per paging, its workers a list, not one per worker

Revision ID: 063c7f128ca1
Revises: 0b319d265b12
Create Date: 2026-12-01 16:52:48.291024
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "063c7f128ca1"
down_revision = "0b319d265b12"
branch_labels = None
depends_on = None

_KEY = ("agency_id", "alert_id", "level", "paged_at")


def _page_table() -> sa.TableClause:
    return sa.table(
        "oncall_page",
        sa.column("agency_id", sa.String()),
        sa.column("alert_id", sa.String()),
        sa.column("level", sa.Integer()),
        sa.column("worker", sa.String()),
        sa.column("paged_at", sa.DateTime(timezone=True)),
    )


def _paging_table() -> sa.TableClause:
    return sa.table(
        "oncall_paging",
        sa.column("agency_id", sa.String()),
        sa.column("alert_id", sa.String()),
        sa.column("level", sa.Integer()),
        sa.column("workers", sa.JSON()),
        sa.column("paged_at", sa.DateTime(timezone=True)),
    )


def upgrade() -> None:
    op.create_table(
        "oncall_paging",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.String(), nullable=False),
        sa.Column("alert_id", sa.String(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("workers", sa.JSON(), nullable=False),
        sa.Column("paged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("oncall_paging", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_oncall_paging_alert_id"), ["alert_id"], unique=False)

    # Who was paged stays known: the workers paged together (one alert, one level, one moment) make one row.
    connection = op.get_bind()
    pagings: dict[tuple[str, str, int, datetime], list[str]] = defaultdict(list)
    for row in connection.execute(sa.select(_page_table())).mappings():
        pagings[tuple(row[k] for k in _KEY)].append(row["worker"])
    if pagings:
        connection.execute(
            sa.insert(_paging_table()),
            [dict(zip(_KEY, key, strict=True)) | {"workers": sorted(workers)} for key, workers in pagings.items()],
        )

    with op.batch_alter_table("oncall_page", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oncall_page_alert_id"))
    op.drop_table("oncall_page")


def downgrade() -> None:
    op.create_table(
        "oncall_page",
        sa.Column("id", sa.INTEGER(), nullable=False),
        sa.Column("agency_id", sa.VARCHAR(), nullable=False),
        sa.Column("alert_id", sa.VARCHAR(), nullable=False),
        sa.Column("level", sa.INTEGER(), nullable=False),
        sa.Column("worker", sa.VARCHAR(), nullable=False),
        sa.Column("paged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("agency_id", "alert_id", "level", "worker"),
    )
    with op.batch_alter_table("oncall_page", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_oncall_page_alert_id"), ["alert_id"], unique=False)

    connection = op.get_bind()
    pages = [
        {k: row[k] for k in _KEY} | {"worker": worker}
        for row in connection.execute(sa.select(_paging_table())).mappings()
        for worker in row["workers"]
    ]
    if pages:
        connection.execute(sa.insert(_page_table()), pages)

    with op.batch_alter_table("oncall_paging", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oncall_paging_alert_id"))
    op.drop_table("oncall_paging")
