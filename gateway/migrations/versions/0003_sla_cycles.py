"""SLA cycles: a reopened ticket gets a new cycle, and each breach escalates once per cycle

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply. Existing tickets and breaches belong to cycle 0."""
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sla_cycle", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cycle", sa.Integer(), server_default="0", nullable=False))
        batch_op.drop_constraint("uq_escalations_ticket_breach", type_="unique")
        batch_op.create_unique_constraint(
            "uq_escalations_ticket_cycle_breach", ["ticket_id", "cycle", "breach"]
        )


def downgrade() -> None:
    """Revert (fails if a ticket has breaches in more than one cycle: they would clash)."""
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.drop_constraint("uq_escalations_ticket_cycle_breach", type_="unique")
        batch_op.create_unique_constraint("uq_escalations_ticket_breach", ["ticket_id", "breach"])
        batch_op.drop_column("cycle")
    # In place (SQLite >= 3.35 has DROP COLUMN): recreating `tickets` would trip the foreign
    # keys of the tables that reference it.
    with op.batch_alter_table("tickets", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("sla_cycle")
