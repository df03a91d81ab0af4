"""Broker accounts: topics granted to a device beyond its own (controller topics)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply. Existing accounts have no grants (NULL)."""
    with op.batch_alter_table("mqtt_credentials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grants", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Revert (the grants are dropped; re-add the devices with --grant-write after upgrading)."""
    with op.batch_alter_table("mqtt_credentials", schema=None) as batch_op:
        batch_op.drop_column("grants")
