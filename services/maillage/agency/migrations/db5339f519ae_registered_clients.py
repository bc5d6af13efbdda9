"""Registered clients: partner systems getting tokens with the client-credentials grant

Revision ID: db5339f519ae
Revises: b809d06b5581
Create Date: 2026-11-30 12:19:45.310422
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "db5339f519ae"
down_revision = "b809d06b5581"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_client",
        sa.Column("client_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("secret_hash", sa.String(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("client_id"),
    )


def downgrade() -> None:
    op.drop_table("oauth_client")
