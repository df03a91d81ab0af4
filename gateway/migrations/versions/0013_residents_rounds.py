"""Residents and rounds: resident reports and ratings, spent proof-of-work challenges, patrol
scans and the tickets rounds planning opened

Revision ID: 0013
Revises: 0007
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply (new tables only; existing tickets are not resident reports)."""
    op.create_table(
        "resident_reports",
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id"), primary_key=True),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("place_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("tracking_hash", sa.String(64), nullable=False),
        sa.Column("entered_by", sa.String(64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("rating_comment", sa.Text(), nullable=True),
        sa.Column("rated_at", sa.Float(), nullable=True),
        sa.Column("flagged_at", sa.Float(), nullable=True),
        sa.UniqueConstraint("tracking_hash", name="uq_resident_reports_tracking_hash"),
    )
    op.create_index(
        "ix_resident_reports_place", "resident_reports", ["site_id", "place_id", "created_at"]
    )
    op.create_table(
        "pow_spent",
        sa.Column("challenge_id", sa.String(64), primary_key=True),
        sa.Column("at", sa.Float(), nullable=False),
    )
    op.create_index("ix_pow_spent_at", "pow_spent", ["at"])
    op.create_table(
        "round_scans",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("route_id", sa.String(64), nullable=False),
        sa.Column("checkpoint_id", sa.String(64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("photo_type", sa.String(32), nullable=True),
        sa.Column("photo", sa.LargeBinary(), nullable=True),
    )
    op.create_index("ix_round_scans_site_at", "round_scans", ["site_id", "at"])
    op.create_table(
        "round_tickets",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("decision_key", sa.String(200), primary_key=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    """Revert (reports, ratings and scans are dropped; their tickets stay)."""
    op.drop_table("round_tickets")
    op.drop_index("ix_round_scans_site_at", table_name="round_scans")
    op.drop_table("round_scans")
    op.drop_index("ix_pow_spent_at", table_name="pow_spent")
    op.drop_table("pow_spent")
    op.drop_index("ix_resident_reports_place", table_name="resident_reports")
    op.drop_table("resident_reports")
