"""The baseline: the schema as create_all made it before there were migrations.

Revision ID: 4b1420c71503
Revises: none
Create Date: 2026-11-30 03:38:02.167467
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "4b1420c71503"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_dead_letter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dlq_topic", sa.String(), nullable=False),
        sa.Column("dlq_partition", sa.Integer(), nullable=False),
        sa.Column("dlq_offset", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
        sa.Column("service", sa.String(), nullable=False),
        sa.Column("topic", sa.String(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=True),
        sa.Column("offset", sa.Integer(), nullable=True),
        sa.Column("event_id", sa.String(), nullable=True),
        sa.Column("event_type", sa.String(), nullable=True),
        sa.Column("source", sa.String(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replays", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dlq_topic", "dlq_partition", "dlq_offset"),
    )
    with op.batch_alter_table("monitor_dead_letter", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_monitor_dead_letter_reason"), ["reason"], unique=False)

    op.create_table(
        "monitor_decision",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("event_type", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("sector", sa.String(), nullable=False),
        sa.Column("legal_basis", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=False),
        sa.Column("review", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("monitor_decision", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_monitor_decision_event_id"), ["event_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_monitor_decision_recorded_at"), ["recorded_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_monitor_decision_sector"), ["sector"], unique=False)

    op.create_table(
        "monitor_oncall",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency", sa.String(), nullable=False),
        sa.Column("alert_id", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("levels_paged", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_after_s", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("agency", "alert_id"),
    )
    with op.batch_alter_table("monitor_oncall", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_monitor_oncall_state"), ["state"], unique=False)

    op.create_table(
        "monitor_rejection",
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("event_type", sa.String(), nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_table(
        "monitor_review",
        sa.Column("alert_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("alert_id"),
    )
    with op.batch_alter_table("monitor_review", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_monitor_review_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("monitor_review", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_monitor_review_status"))

    op.drop_table("monitor_review")
    op.drop_table("monitor_rejection")
    with op.batch_alter_table("monitor_oncall", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_monitor_oncall_state"))

    op.drop_table("monitor_oncall")
    with op.batch_alter_table("monitor_decision", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_monitor_decision_sector"))
        batch_op.drop_index(batch_op.f("ix_monitor_decision_recorded_at"))
        batch_op.drop_index(batch_op.f("ix_monitor_decision_event_id"))

    op.drop_table("monitor_decision")
    with op.batch_alter_table("monitor_dead_letter", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_monitor_dead_letter_reason"))

    op.drop_table("monitor_dead_letter")
