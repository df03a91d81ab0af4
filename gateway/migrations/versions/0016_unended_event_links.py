"""Unended event links: a partial index on ticket_events (ticket_id) WHERE NOT ended

Ingest reads the events of a ticket that have not ended for every ticket a batch touches;
through the index on ticket_id alone that read visits every event the ticket ever had.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply (builds the index from the existing links)."""
    op.create_index(
        "ix_ticket_events_unended",
        "ticket_events",
        ["ticket_id"],
        sqlite_where=sa.text("NOT ended"),
        postgresql_where=sa.text("NOT ended"),
    )


def downgrade() -> None:
    """Revert."""
    op.drop_index("ix_ticket_events_unended", table_name="ticket_events")
