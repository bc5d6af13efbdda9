"""The baseline: the schema as create_all made it before there were migrations.

Revision ID: cd30d8406bec
Revises: none
Create Date: 2026-11-30 03:37:56.261719
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "cd30d8406bec"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_audit",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("event_type", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("sector", sa.String(), nullable=False),
        sa.Column("subject_ref", sa.String(), nullable=False),
        sa.Column("subject_role", sa.String(), nullable=False),
        sa.Column("legal_basis", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("delivered", sa.JSON(), nullable=False),
        sa.Column("removed", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("review", sa.Boolean(), nullable=False),
        sa.Column("raised_by", sa.String(), nullable=True),
        sa.Column("alert_id", sa.String(), nullable=True),
        sa.Column("decision", sa.String(), nullable=True),
        sa.Column("reviewer", sa.String(), nullable=True),
        sa.Column("legal_reference", sa.String(), nullable=True),
        sa.Column("conference_id", sa.String(), nullable=True),
        sa.Column("consents", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("notice", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("policy_sha256", sa.String(), nullable=False),
        sa.Column("recorded_at", sa.String(), nullable=False),
        sa.Column("prev_hash", sa.String(), nullable=False),
        sa.Column("hash", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("gateway_audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gateway_audit_alert_id"), ["alert_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_gateway_audit_event_id"), ["event_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_gateway_audit_subject_ref"), ["subject_ref"], unique=False)

    op.create_table(
        "gateway_case_conference",
        sa.Column("conference_id", sa.String(), nullable=False),
        sa.Column("convener", sa.String(), nullable=False),
        sa.Column("participants", sa.JSON(), nullable=False),
        sa.Column("subjects", sa.JSON(), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("conference_id"),
    )
    op.create_table(
        "gateway_grant",
        sa.Column("consent_id", sa.String(), nullable=False),
        sa.Column("subject_ref", sa.String(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("purposes", sa.JSON(), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disclosers", sa.JSON(), nullable=True),
        sa.Column("granted_by", sa.String(), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("consent_id"),
    )
    with op.batch_alter_table("gateway_grant", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gateway_grant_subject_ref"), ["subject_ref"], unique=False)

    op.create_table(
        "gateway_notice",
        sa.Column("notice_id", sa.String(), nullable=False),
        sa.Column("cause", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("originator", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("subject_ref", sa.String(), nullable=False),
        sa.Column("subject_role", sa.String(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("erase", sa.Boolean(), nullable=False),
        sa.Column("consents", sa.JSON(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("erased", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("notice_id"),
    )
    with op.batch_alter_table("gateway_notice", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gateway_notice_cause"), ["cause"], unique=False)

    op.create_table(
        "gateway_processed",
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("digest", sa.String(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.Integer(), nullable=False),
        sa.Column("disclosures", sa.JSON(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_table(
        "gateway_return_route",
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("sender", sa.String(), nullable=False),
        sa.Column("subject_ref", sa.String(), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )


def downgrade() -> None:
    op.drop_table("gateway_return_route")
    op.drop_table("gateway_processed")
    with op.batch_alter_table("gateway_notice", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_notice_cause"))

    op.drop_table("gateway_notice")
    with op.batch_alter_table("gateway_grant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_grant_subject_ref"))

    op.drop_table("gateway_grant")
    op.drop_table("gateway_case_conference")
    with op.batch_alter_table("gateway_audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_audit_subject_ref"))
        batch_op.drop_index(batch_op.f("ix_gateway_audit_event_id"))
        batch_op.drop_index(batch_op.f("ix_gateway_audit_alert_id"))

    op.drop_table("gateway_audit")
