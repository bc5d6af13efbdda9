"""Disclosure reports: a person's requests registered here, with the document the gateway answered, and the
holds this agency placed.

Revision ID: 4a9c950846cf
Revises: 24bf42d7cbad
Create Date: 2026-11-30 19:06:32.219015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "4a9c950846cf"
down_revision = "24bf42d7cbad"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_hold",
        sa.Column("hold_id", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("subject_ref", sa.String(), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("placed_by", sa.String(), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hold_id"),
    )
    with op.batch_alter_table("report_hold", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_hold_subject_ref"), ["subject_ref"], unique=False)

    op.create_table(
        "report_request",
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("subject_ref", sa.String(), nullable=False),
        sa.Column("language", sa.String(), nullable=False),
        sa.Column("requested_by", sa.String(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disclosures", sa.Integer(), nullable=True),
        sa.Column("held_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hold_reasons", sa.JSON(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("pdf", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("request_id"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("report_request", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_request_subject_ref"), ["subject_ref"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("report_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_request_subject_ref"))

    op.drop_table("report_request")
    with op.batch_alter_table("report_hold", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_hold_subject_ref"))

    op.drop_table("report_hold")
