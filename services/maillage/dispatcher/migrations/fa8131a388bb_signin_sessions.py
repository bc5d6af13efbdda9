"""Sign-in sessions: on-call workers signed in for a shift with their agency's invitation

Revision ID: fa8131a388bb
Revises: 1dd24140fa9d
Create Date: 2026-11-30 12:30:07.721975
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "fa8131a388bb"
down_revision = "1dd24140fa9d"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signin_session",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("issuer", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("secret_sha256", sa.String(), nullable=False),
        sa.Column("previous_sha256", sa.String(), nullable=True),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("signin_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signin_session_issuer"), ["issuer"], unique=False)
        batch_op.create_index(batch_op.f("ix_signin_session_subject"), ["subject"], unique=False)

    op.create_table(
        "signin_used_invitation",
        sa.Column("jti", sa.String(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti"),
    )


def downgrade() -> None:
    op.drop_table("signin_used_invitation")
    with op.batch_alter_table("signin_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signin_session_subject"))
        batch_op.drop_index(batch_op.f("ix_signin_session_issuer"))

    op.drop_table("signin_session")
