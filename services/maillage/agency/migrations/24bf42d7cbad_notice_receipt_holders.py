"""Notice receipts name their holder and a correction's flags

Revision ID: 24bf42d7cbad
Revises: db5339f519ae
Create Date: 2026-11-30 19:01:36.747548
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "24bf42d7cbad"
down_revision = "db5339f519ae"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notice_receipt", schema=None) as batch_op:
        batch_op.add_column(sa.Column("holder", sa.String(), nullable=False, server_default="agency"))
        batch_op.add_column(sa.Column("misrouted", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("disallowed", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("notice_receipt", schema=None) as batch_op:
        batch_op.drop_column("disallowed")
        batch_op.drop_column("misrouted")
        batch_op.drop_column("holder")
