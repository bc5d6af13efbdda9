"""Erasures asked of each holder and their confirmations

Revision ID: 4f9ee86c6218
Revises: c5a2fa04273c
Create Date: 2026-11-30 19:42:25.689129
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "4f9ee86c6218"
down_revision = "c5a2fa04273c"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_erasure_notice",
        sa.Column("notice_id", sa.String(), nullable=False),
        sa.Column("agency", sa.String(), nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("notice_id"),
    )
    with op.batch_alter_table("monitor_erasure_notice", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_monitor_erasure_notice_confirmed_at"), ["confirmed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("monitor_erasure_notice", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_monitor_erasure_notice_confirmed_at"))

    op.drop_table("monitor_erasure_notice")
