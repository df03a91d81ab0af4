"""Model artifacts, rollouts and each device's place in a rollout

Revision ID: 0011
Revises: 0007
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply."""
    op.create_table(
        "model_artifacts",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("min_edge_version", sa.String(32), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("uploaded_by", sa.String(64), nullable=False),
        sa.Column("uploaded_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_model_artifacts_name_version"),
    )
    op.create_table(
        "rollouts",
        sa.Column("rollout_id", sa.String(32), primary_key=True),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column(
            "artifact_sha256",
            sa.String(64),
            sa.ForeignKey("model_artifacts.sha256"),
            nullable=False,
        ),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("waves", sa.Integer(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.create_index("ix_rollouts_site_id", "rollouts", ["site_id"])
    op.create_table(
        "rollout_devices",
        sa.Column(
            "rollout_id", sa.String(32), sa.ForeignKey("rollouts.rollout_id"), primary_key=True
        ),
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("install_command_id", sa.String(128), nullable=True),
        sa.Column("last_command_id", sa.String(128), nullable=True),
        sa.Column("commanded_at", sa.Float(), nullable=True),
        sa.Column("report_ts", sa.Float(), nullable=True),
        sa.Column("running", sa.String(100), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_rollout_devices_command", "rollout_devices", ["site_id", "device_id"])


def downgrade() -> None:
    """Revert (rollout history and the registry's index are dropped; files stay on disk)."""
    op.drop_index("ix_rollout_devices_command", table_name="rollout_devices")
    op.drop_table("rollout_devices")
    op.drop_index("ix_rollouts_site_id", table_name="rollouts")
    op.drop_table("rollouts")
    op.drop_table("model_artifacts")
