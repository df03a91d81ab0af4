"""Telemetry lease: which replica runs the sensor rules (one holder per lease, with expiry)

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply (a new table; no replica holds a lease yet)."""
    op.create_table(
        "telemetry_leases",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("taken_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    """Revert."""
    op.drop_table("telemetry_leases")
