"""The Alembic migrations build exactly the schema `gateway.store.schema` declares, on both
databases: a hand-written revision that drifts from the tables fails here, not in production."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from gateway.store import database_url
from gateway.store.engine import MIGRATIONS_DIR, make_engine
from gateway.store.schema import metadata


def test_migrated_database_matches_the_declared_schema(db_url: str) -> None:
    engine = create_engine(database_url(db_url))
    try:
        with engine.connect() as conn:
            tables = set(conn.dialect.get_table_names(conn))
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert set(metadata.tables) <= tables
    assert diff == []


def test_sla_cycle_migration_keeps_existing_tickets_and_breaches_in_cycle_0(db_url: str) -> None:
    """0002 → 0003 on a database with a ticket and a recorded breach, and back."""
    engine = make_engine(db_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))

    def move(revision: str, *, down: bool = False) -> None:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(config, revision)

    try:
        move("0002", down=True)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO tickets (site_id, device_id, category, severity, state, tier,"
                    " dedup_key, event_count, created_at, updated_at, ack_due_at, resolve_due_at)"
                    " VALUES ('s', 'd', 'litter', 'normal', 'new', 2, 'k', 1, 0, 0, 1, 2)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO escalations (ticket_id, breach, due_at, at, from_tier, to_tier)"
                    " SELECT id, 'ack', 1, 1, 1, 2 FROM tickets"
                )
            )
        move("head")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT sla_cycle, tier FROM tickets")).all() == [(0, 2)]
            assert conn.execute(text("SELECT cycle, breach FROM escalations")).all() == [(0, "ack")]
            again = (
                "INSERT INTO escalations (ticket_id, cycle, breach, due_at, at, from_tier, to_tier)"
                " SELECT id, :cycle, 'ack', 1, 1, 2, 3 FROM tickets"
            )
            conn.execute(text(again), {"cycle": 1})  # the same breach in the next cycle
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(again), {"cycle": 1})  # twice in one cycle: refused
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM escalations WHERE cycle = 1"))
        move("0002", down=True)
        with engine.begin() as conn:
            assert conn.execute(text("SELECT breach FROM escalations")).all() == [("ack",)]
            assert conn.execute(text("SELECT tier FROM tickets")).all() == [(2,)]
    finally:
        engine.dispose()


def test_per_device_ids_migration_keeps_rows_under_their_owner(db_url: str) -> None:
    """0003 → 0004 on a database with a processed message, an event link, a dead letter and
    a referenced and an orphan snapshot; then two devices may share a msg_id; and back."""
    engine = make_engine(db_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))

    def move(revision: str, *, down: bool = False) -> None:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(config, revision)

    try:
        move("0003", down=True)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO devices (device_id, site_id, kind, online, last_status_ts,"
                    " heartbeat_interval_s, created_at)"
                    " VALUES ('cam-1', 'site-1', 'camera', false, 3.2e10, 1e9, 0)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO tickets (site_id, device_id, category, severity, state, tier,"
                    " dedup_key, event_count, created_at, updated_at, ack_due_at, resolve_due_at)"
                    " VALUES ('site-1', 'cam-1', 'litter', 'normal', 'new', 1, 'k', 1, 0, 0, 1, 2)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO processed_messages (msg_id, device_id, received_at)"
                    " VALUES ('msg-1', 'cam-1', 1)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO ticket_events (event_id, ticket_id, device_id, ended, last_seq)"
                    " SELECT 'ev-1', id, 'cam-1', false, 0 FROM tickets"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO evidence (ticket_id, event_id, msg_id, phase, seq, ts,"
                    " snapshot_id, detail) SELECT id, 'ev-1', 'msg-1', 'start', 0, 1, 'snap-1',"
                    " '{}' FROM tickets"
                )
            )
            for snap in ("snap-1", "snap-2"):
                conn.execute(
                    text(
                        "INSERT INTO snapshots (site_id, device_id, snapshot_id, sha256, data,"
                        " received_at) VALUES ('site-1', 'cam-1', :snap, 'x', :data, 5)"
                    ),
                    {"snap": snap, "data": b"\xff\xd8abc"},
                )
        move("head")
        with engine.begin() as conn:
            assert conn.execute(
                text("SELECT msg_id, site_id, device_id FROM processed_messages")
            ).all() == [("msg-1", "site-1", "cam-1")]
            assert conn.execute(text("SELECT site_id, device_id FROM ticket_events")).all() == [
                ("site-1", "cam-1")
            ]
            assert conn.execute(
                text("SELECT snapshot_id, size_bytes, linked_at FROM snapshots ORDER BY 1")
            ).all() == [("snap-1", 5, 5.0), ("snap-2", 5, None)]
            assert conn.execute(
                text("SELECT last_status_ts, heartbeat_interval_s FROM devices")
            ).all() == [(None, 3600.0)]
            conn.execute(
                text(
                    "INSERT INTO processed_messages (msg_id, site_id, device_id, received_at)"
                    " VALUES ('msg-1', 'site-2', 'cam-2', 2)"
                )
            )
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO processed_messages (msg_id, site_id, device_id, received_at)"
                    " VALUES ('msg-1', 'site-1', 'cam-1', 3)"
                )
            )
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM processed_messages WHERE device_id = 'cam-2'"))
        move("0003", down=True)
        with engine.begin() as conn:
            assert conn.execute(text("SELECT msg_id FROM processed_messages")).all() == [("msg-1",)]
            assert conn.execute(text("SELECT count(*) FROM snapshots")).scalar_one() == 2
    finally:
        engine.dispose()
