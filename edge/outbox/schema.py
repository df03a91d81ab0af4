"""The outbox file's tables, opening it (WAL, sync mode), upgrading old files, reading rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal

from edge.outbox.items import OutboxError, StoredItem

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    grp INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    kind TEXT NOT NULL,
    msg_id TEXT,
    created_at REAL NOT NULL,
    snapshot_id TEXT
);
CREATE INDEX IF NOT EXISTS outbox_drop_order ON outbox (priority, seq);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS commands (
    command_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS commands_age ON commands (received_at);
"""

# After the upgrade, so an old file has the column before its index is created.
_ACK_INDEXES = """
CREATE INDEX IF NOT EXISTS outbox_msg_id ON outbox (msg_id) WHERE msg_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_snapshot_id ON outbox (snapshot_id)
    WHERE snapshot_id IS NOT NULL;
"""

COLUMNS = "seq, topic, payload, qos, retain, kind, msg_id, snapshot_id"

INSERT = (
    "INSERT INTO outbox (grp, topic, payload, qos, retain, priority, kind,"
    " msg_id, created_at, snapshot_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def stored(r: tuple[object, ...]) -> StoredItem:
    """A row selected with `COLUMNS` as a StoredItem."""
    return StoredItem(
        seq=int(str(r[0])),
        topic=str(r[1]),
        payload=bytes(r[2]) if isinstance(r[2], bytes | bytearray | memoryview) else b"",
        qos=int(str(r[3])),
        retain=bool(r[4]),
        kind=str(r[5]),
        msg_id=None if r[6] is None else str(r[6]),
        snapshot_id=None if r[7] is None else str(r[7]),
    )


def _upgrade(db: sqlite3.Connection) -> None:
    """Bring a file from before end-to-end acks up to date, in place (idempotent)."""
    columns = {str(row[1]) for row in db.execute("PRAGMA table_info(outbox)")}
    if "snapshot_id" in columns:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("ALTER TABLE outbox ADD COLUMN snapshot_id TEXT")
        # A snapshot's topic ends in its id: guanjia/v1/{site}/{device}/snapshot/{id}.
        snapshots = db.execute("SELECT seq, topic FROM outbox WHERE kind = 'snapshot'").fetchall()
        for seq, topic in snapshots:
            db.execute(
                "UPDATE outbox SET snapshot_id = ? WHERE seq = ?",
                (str(topic).rsplit("/", 1)[-1], seq),
            )
        db.execute("COMMIT")
    except sqlite3.Error:
        db.execute("ROLLBACK")
        raise


def open_file(path: Path, synchronous: Literal["full", "normal"]) -> sqlite3.Connection:
    """Open (creating or upgrading) the outbox file in WAL mode; OutboxError if it cannot be."""
    db: sqlite3.Connection | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are issued explicitly (BEGIN IMMEDIATE / COMMIT),
        # so each commit is exactly one transaction and one fsync.
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OutboxError(f"{path}: SQLite refused WAL mode (got {mode!r})")
        db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        db.executescript(_SCHEMA)
        _upgrade(db)
        db.executescript(_ACK_INDEXES)
    except (sqlite3.Error, OSError, OutboxError) as exc:
        if db is not None:
            db.close()
        raise OutboxError(f"cannot open outbox {path}: {exc}") from exc
    return db
