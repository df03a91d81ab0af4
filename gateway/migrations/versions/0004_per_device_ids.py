"""Device-chosen ids keyed by (site, device); dead letters know their site; snapshots know
their size, whether an event took them, and may be announced before they arrive

- ``processed_messages`` and ``ticket_events``: primary key (id, site_id, device_id), so one
  device cannot claim another's message ids or end another's events (existing rows get the
  site of their device / ticket);
- ``dead_letters``: ``site_id``/``device_id`` (NULL for old rows: all-site users only);
- ``snapshots``: ``size_bytes``, ``linked_at`` (rows an event references count as linked
  at their arrival), ``data``/``received_at`` nullable for a snapshot an event announced;
- ``devices.last_status_ts`` now holds the gateway's receive time of the last status: the
  device-stamped values are cleared (one from the future would hide every later status);
  heartbeat intervals stored above the contract's new bound (3,600 s) are clamped to it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _rekey(table: str, id_column: str, site_from: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("site_id", sa.String(length=64), nullable=False, server_default="")
        )
    # Both fragments are constants of this module, not input.
    op.execute(sa.text(f"UPDATE {table} SET site_id = COALESCE(({site_from}), '')"))  # noqa: S608
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.alter_column("site_id", server_default=None)
        batch_op.drop_constraint(f"pk_{table}", type_="primary")
        batch_op.create_primary_key(f"pk_{table}", [id_column, "site_id", "device_id"])


def upgrade() -> None:
    """Apply."""
    _rekey(
        "processed_messages",
        "msg_id",
        "SELECT d.site_id FROM devices d WHERE d.device_id = processed_messages.device_id",
    )
    _rekey(
        "ticket_events",
        "event_id",
        "SELECT t.site_id FROM tickets t WHERE t.id = ticket_events.ticket_id",
    )
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("site_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("device_id", sa.String(length=64), nullable=True))
        batch_op.create_index(
            "ix_dead_letters_site_device", ["site_id", "device_id", "received_at"], unique=False
        )
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("size_bytes", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("linked_at", sa.Float(), nullable=True))
        batch_op.alter_column("data", existing_type=sa.LargeBinary(), nullable=True)
        batch_op.alter_column("received_at", existing_type=sa.Float(), nullable=True)
        batch_op.create_index("ix_snapshots_received_at", ["received_at"], unique=False)
    op.execute(
        sa.text(
            "UPDATE snapshots SET size_bytes = LENGTH(data), linked_at = CASE WHEN EXISTS ("
            " SELECT 1 FROM evidence e JOIN tickets t ON t.id = e.ticket_id"
            " WHERE e.snapshot_id = snapshots.snapshot_id AND t.site_id = snapshots.site_id"
            " AND t.device_id = snapshots.device_id) THEN received_at END"
        )
    )
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.alter_column("size_bytes", server_default=None)
    op.execute(sa.text("UPDATE devices SET last_status_ts = NULL"))
    # The contract now bounds a heartbeat interval to an hour; an interval stored before
    # (1e9 s: never offline) must not outlive it.
    op.execute(
        sa.text("UPDATE devices SET heartbeat_interval_s = 3600 WHERE heartbeat_interval_s > 3600")
    )


def _unkey(table: str, id_column: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.drop_constraint(f"pk_{table}", type_="primary")
        batch_op.create_primary_key(f"pk_{table}", [id_column])
        batch_op.drop_column("site_id")


def downgrade() -> None:
    """Revert. Fails if two devices used the same msg_id or event_id (they would clash);
    announced-but-missing snapshots are dropped."""
    op.execute(sa.text("DELETE FROM snapshots WHERE data IS NULL"))
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.drop_index("ix_snapshots_received_at")
        batch_op.alter_column("received_at", existing_type=sa.Float(), nullable=False)
        batch_op.alter_column("data", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column("linked_at")
        batch_op.drop_column("size_bytes")
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_index("ix_dead_letters_site_device")
        batch_op.drop_column("device_id")
        batch_op.drop_column("site_id")
    _unkey("ticket_events", "event_id")
    _unkey("processed_messages", "msg_id")
