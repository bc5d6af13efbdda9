"""Sign-in sessions: operators signed in on the dashboard with an invitation

Revision ID: a253b9f29f40
Revises: 70bda8847658
Create Date: 2026-11-30 12:30:42.555255
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "a253b9f29f40"
down_revision = "70bda8847658"
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
