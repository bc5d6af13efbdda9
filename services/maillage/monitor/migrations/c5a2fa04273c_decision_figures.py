"""Decisions keep what the Pôles' figures count: the Pôle and an event's vocabulary values

Revision ID: c5a2fa04273c
Revises: a253b9f29f40
Create Date: 2026-11-30 19:04:46.765892
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c5a2fa04273c"
down_revision = "a253b9f29f40"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("monitor_decision", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pole", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("severity", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("kind", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("referral_decision", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("decline_reason", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("conference_purpose", sa.String(), nullable=True))
        batch_op.create_index(batch_op.f("ix_monitor_decision_pole"), ["pole"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("monitor_decision", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_monitor_decision_pole"))
        batch_op.drop_column("conference_purpose")
        batch_op.drop_column("decline_reason")
        batch_op.drop_column("referral_decision")
        batch_op.drop_column("kind")
        batch_op.drop_column("severity")
        batch_op.drop_column("pole")
