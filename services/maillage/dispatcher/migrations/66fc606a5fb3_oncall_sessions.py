"""On-call sessions: workers signed in for a shift with their agency's invitation

Revision ID: 66fc606a5fb3
Revises: 1dd24140fa9d
Create Date: 2026-11-30 12:22:57.132629
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "66fc606a5fb3"
down_revision = "1dd24140fa9d"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oncall_session",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("agency_id", sa.String(), nullable=False),
        sa.Column("worker", sa.String(), nullable=False),
        sa.Column("secret_sha256", sa.String(), nullable=False),
        sa.Column("previous_sha256", sa.String(), nullable=True),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("oncall_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_oncall_session_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_oncall_session_worker"), ["worker"], unique=False)

    op.create_table(
        "oncall_used_invitation",
        sa.Column("jti", sa.String(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti"),
    )


def downgrade() -> None:
    op.drop_table("oncall_used_invitation")
    with op.batch_alter_table("oncall_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oncall_session_worker"))
        batch_op.drop_index(batch_op.f("ix_oncall_session_agency_id"))

    op.drop_table("oncall_session")
