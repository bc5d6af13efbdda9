"""Erasures and role corrections: notices name their holder and a correction's flags; corrected roles; audited actions

Revision ID: 6ac6779cf7fd
Revises: 35e99ed8cb22
Create Date: 2026-11-30 19:01:33.924945
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "6ac6779cf7fd"
down_revision = "35e99ed8cb22"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_subject_role",
        sa.Column("subject_ref", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("previous", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("corrected_by", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("corrected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject_ref"),
    )
    with op.batch_alter_table("gateway_audit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("action", sa.JSON(none_as_null=True), nullable=True))

    with op.batch_alter_table("gateway_notice", schema=None) as batch_op:
        batch_op.add_column(sa.Column("holder", sa.String(), nullable=False, server_default="agency"))
        batch_op.add_column(sa.Column("role", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("misrouted", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("disallowed", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("gateway_notice", schema=None) as batch_op:
        batch_op.drop_column("disallowed")
        batch_op.drop_column("misrouted")
        batch_op.drop_column("role")
        batch_op.drop_column("holder")

    with op.batch_alter_table("gateway_audit", schema=None) as batch_op:
        batch_op.drop_column("action")

    op.drop_table("gateway_subject_role")
