"""Audit records keep what the Pôles' figures count: the Pôle and an event's vocabulary values (severity, kind,
referral decision, decline reason, conference purpose). Records written before have none: they hash as before.

Revision ID: ba20579bef7d
Revises: cdeb50384101
Create Date: 2026-11-30 19:04:43.452703
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "ba20579bef7d"
down_revision = "cdeb50384101"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gateway_audit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pole", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("severity", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("kind", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("referral_decision", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("decline_reason", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("conference_purpose", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gateway_audit", schema=None) as batch_op:
        batch_op.drop_column("conference_purpose")
        batch_op.drop_column("decline_reason")
        batch_op.drop_column("referral_decision")
        batch_op.drop_column("kind")
        batch_op.drop_column("severity")
        batch_op.drop_column("pole")
