"""Sensor nodes: a device's telemetry profile and whether it speaks ESPHome's topics

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply. Existing devices have no profile (their telemetry is not stored)."""
    op.create_table(
        "sensor_nodes",
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.device_id"), primary_key=True),
        sa.Column("profile", sa.String(48), nullable=False),
        sa.Column("esphome", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    """Revert (profiles are dropped; re-add the sensor devices with --profile)."""
    op.drop_table("sensor_nodes")
