"""Disclosure reports: the holds agencies place on a person's report, the reports answered (metadata only), and
the audit records' `report` field (SQLite adds the column in place: the audit table is not copied).

Revision ID: cdeb50384101
Revises: 6ac6779cf7fd
Create Date: 2026-11-30 19:05:25.310751
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "cdeb50384101"
down_revision = "6ac6779cf7fd"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_issued_report",
        sa.Column("issued_id", sa.String(), nullable=False),
        sa.Column("request_event_id", sa.String(), nullable=False),
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("requester", sa.String(), nullable=False),
        sa.Column("subject_ref", sa.String(), nullable=False),
        sa.Column("subject_role", sa.String(), nullable=False),
        sa.Column("language", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("issued_id"),
    )
    with op.batch_alter_table("gateway_issued_report", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gateway_issued_report_request_event_id"), ["request_event_id"], unique=False
        )

    op.create_table(
        "gateway_report_hold",
        sa.Column("hold_id", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("subject_ref", sa.String(), nullable=False),
        sa.Column("agency_id", sa.String(), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hold_id"),
    )
    with op.batch_alter_table("gateway_report_hold", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gateway_report_hold_subject_ref"), ["subject_ref"], unique=False)

    with op.batch_alter_table("gateway_audit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("report", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gateway_audit", schema=None) as batch_op:
        batch_op.drop_column("report")

    with op.batch_alter_table("gateway_report_hold", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_report_hold_subject_ref"))

    op.drop_table("gateway_report_hold")
    with op.batch_alter_table("gateway_issued_report", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_issued_report_request_event_id"))

    op.drop_table("gateway_issued_report")
