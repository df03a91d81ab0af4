"""command audit: the `commands` table behind POST /api/devices/{id}/commands

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply."""
    op.create_table(
        "commands",
        sa.Column("command_id", sa.String(length=128), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("issued_by", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("result_status", sa.String(length=16), nullable=True),
        sa.Column("result_reason", sa.Text(), nullable=True),
        sa.Column("result_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("command_id", name=op.f("pk_commands")),
    )
    op.create_index(
        "ix_commands_device", "commands", ["site_id", "device_id", "issued_at"], unique=False
    )


def downgrade() -> None:
    """Revert."""
    op.drop_index("ix_commands_device", table_name="commands")
    op.drop_table("commands")
