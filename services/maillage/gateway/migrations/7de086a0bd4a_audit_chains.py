"""Audit chains per partition of `submitted`: a surrogate `id` key, the `chain`, `(chain, seq)` unique.

The primary key moves from `seq` to `id`, which neither SQLite's ALTER TABLE nor a batch operation says
portably: the table is rebuilt. Existing rows become chain 0 with `id` = `seq`, so the old chain verifies as
the first of the new ones (the chain is not part of a record's hash).

Revision ID: 7de086a0bd4a
Revises: cd30d8406bec
Create Date: 2026-11-30 07:16:48.897216
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "7de086a0bd4a"
down_revision = "cd30d8406bec"
branch_labels = None
depends_on = None

_INDEXED = ("alert_id", "event_id", "subject_ref")
_KEPT = (
    "seq, event_id, event_type, source, recipient, sector, subject_ref, subject_role, legal_basis, outcome, "
    "delivered, removed, reason, review, raised_by, alert_id, decision, reviewer, legal_reference, "
    "conference_id, consents, notice, policy_sha256, recorded_at, prev_hash, hash"
)


def _columns() -> list[sa.Column[object]]:
    return [
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
    ]


def upgrade() -> None:
    for column in _INDEXED:
        op.drop_index(f"ix_gateway_audit_{column}", table_name="gateway_audit")
    op.rename_table("gateway_audit", "gateway_audit_single_chain")
    op.create_table(
        "gateway_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain", sa.Integer(), nullable=False),
        *_columns(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chain", "seq", name="uq_gateway_audit_chain_seq"),
    )
    for column in _INDEXED:
        op.create_index(f"ix_gateway_audit_{column}", "gateway_audit", [column], unique=False)
    op.execute(f"INSERT INTO gateway_audit (id, chain, {_KEPT}) SELECT seq, 0, {_KEPT} FROM gateway_audit_single_chain")
    op.drop_table("gateway_audit_single_chain")
    if op.get_bind().dialect.name == "postgresql":
        # The ids were given: the next one the sequence hands out must follow them.
        op.execute(
            "SELECT setval(pg_get_serial_sequence('gateway_audit', 'id'), COALESCE(MAX(id), 0) + 1, false) "
            "FROM gateway_audit"
        )


def downgrade() -> None:
    raise NotImplementedError("several audit chains cannot be folded back into one")
