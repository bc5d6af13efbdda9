"""Decisions keyed by `(chain, seq)`: the gateway keeps one audit chain per partition of `submitted`.

The primary key changes, so the table is rebuilt (portable across SQLite and PostgreSQL); existing rows
become chain 0.

Revision ID: 70bda8847658
Revises: 4b1420c71503
Create Date: 2026-11-30 07:16:52.102311
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "70bda8847658"
down_revision = "4b1420c71503"
branch_labels = None
depends_on = None

_INDEXED = ("event_id", "recorded_at", "sector")
_KEPT = "seq, event_id, event_type, source, recipient, sector, legal_basis, outcome, removed, review, recorded_at"


def upgrade() -> None:
    for column in _INDEXED:
        op.drop_index(f"ix_monitor_decision_{column}", table_name="monitor_decision")
    op.rename_table("monitor_decision", "monitor_decision_single_chain")
    op.create_table(
        "monitor_decision",
        sa.Column("chain", sa.Integer(), nullable=False),
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
        sa.PrimaryKeyConstraint("chain", "seq"),
    )
    for column in _INDEXED:
        op.create_index(f"ix_monitor_decision_{column}", "monitor_decision", [column], unique=False)
    op.execute(f"INSERT INTO monitor_decision (chain, {_KEPT}) SELECT 0, {_KEPT} FROM monitor_decision_single_chain")
    op.drop_table("monitor_decision_single_chain")


def downgrade() -> None:
    raise NotImplementedError("several decision chains cannot be folded back into one")
