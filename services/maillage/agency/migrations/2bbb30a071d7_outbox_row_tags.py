"""Outbox row tags: the relay signs no event without its tag

Revision ID: 2bbb30a071d7
Revises: 4a9c950846cf
Create Date: 2026-12-01 10:36:23.326651
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "2bbb30a071d7"
down_revision = "4a9c950846cf"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tag", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("tag")
