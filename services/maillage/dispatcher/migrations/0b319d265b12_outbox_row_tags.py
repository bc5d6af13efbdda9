"""Outbox row tags: the relay signs no event without its tag

Revision ID: 0b319d265b12
Revises: fa8131a388bb
Create Date: 2026-12-01 10:36:25.334098
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0b319d265b12"
down_revision = "fa8131a388bb"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tag", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("tag")
