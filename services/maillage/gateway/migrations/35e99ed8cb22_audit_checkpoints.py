"""Audit checkpoints and full walks: a verification walks on from each chain's last signed link, and a full walk
from the first record runs in the background.

Revision ID: 35e99ed8cb22
Revises: 7de086a0bd4a
Create Date: 2026-11-30 11:59:03.908686
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "35e99ed8cb22"
down_revision = "7de086a0bd4a"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_audit_checkpoint",
        sa.Column("chain", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("recorded_at", sa.String(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("policy_sha256s", sa.JSON(), nullable=False),
        sa.Column("verified_at", sa.String(), nullable=False),
        sa.Column("sigkid", sa.String(), nullable=False),
        sa.Column("sig", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("chain"),
    )
    op.create_table(
        "gateway_audit_walk",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("records_done", sa.Integer(), nullable=False),
        sa.Column("records_total", sa.Integer(), nullable=False),
        sa.Column("report", sa.JSON(none_as_null=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("gateway_audit_walk")
    op.drop_table("gateway_audit_checkpoint")
