"""The embedded store's tables, and the in-place upgrade of a file of an older layout.

Version 3 names each series (site, device, series) once, in `series`, and a raw point is
(id, sid, value, ts): the rows and the series index are a third of version 2's (three text
columns a point), and an insert costs ~3.9 µs a point instead of ~6.1 µs (measured here,
500-row executemany into a WAL file). Version 2 added the ever-growing row id the rollups
are derived from (`gateway.telemetry.sqlite_store`). Version 4 drops the raw table's index
on time alone: only retention read it, and it now walks `points_by_series` one series at a
time; a third B-tree less for every point (~1.9 → ~1.5 µs a row in SQLite, measured here).

Version 5 adds a second file, `<name>.incoming<suffix>` (`HOT_SCHEMA`, attached as `hot`):
the ingest appends raw points and message ids there (no index but the row ids), and
`derive` moves them into `points` and `stored_messages` of the main file, in (series, time)
order (`gateway.telemetry.sqlite_upkeep`). Two files, so the ingest's appends never wait for
a move, a prune or a chart: SQLite has one writer a file. Rows are counted into the minute
rollups when they leave the raw window (`prune`), no longer on the way in: `derived` keeps
the mark of the rows an older version counted already ('points'; ids only grow,
AUTOINCREMENT) and how far the moves got in the other file ('moved', 'moved_keys').
Inserting a reading straight into `points` dirties the last index page of its series: with
an hour of data per series every point costs a page of its own in the WAL, ~13.6 µs a point
(5,000 series, 500-point batches; ~2.5 µs into a new file, which is what a benchmark on a
new store saw). Appending costs ~1.3-2 µs a point with the message ids (less since the append
writes 100 rows a statement: `sqlite_store.ROWS_PER_INSERT`), and the ordered move
~2-4 µs at a flood (measured here; docs/sensors.md, "Stores").
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.telemetry.sqlite_upkeep import LATEST_OF

SCHEMA_VERSION = 5

SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    sid INTEGER PRIMARY KEY,
    site_id TEXT NOT NULL, device_id TEXT NOT NULL, series TEXT NOT NULL,
    UNIQUE (site_id, device_id, series)
);
CREATE INDEX IF NOT EXISTS series_by_device ON series (device_id, series);
CREATE TABLE IF NOT EXISTS points (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sid INTEGER NOT NULL, value REAL NOT NULL, ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS points_by_series ON points (sid, ts);
CREATE TABLE IF NOT EXISTS minutes (
    site_id TEXT NOT NULL, device_id TEXT NOT NULL, series TEXT NOT NULL,
    minute INTEGER NOT NULL, vmin REAL NOT NULL, vmax REAL NOT NULL,
    vsum REAL NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (device_id, series, minute)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latest (
    device_id TEXT NOT NULL, series TEXT NOT NULL, site_id TEXT NOT NULL,
    ts REAL NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (device_id, series)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stored_messages (
    site_id TEXT NOT NULL, device_id TEXT NOT NULL, msg_id TEXT NOT NULL,
    stored_at REAL NOT NULL,
    PRIMARY KEY (site_id, device_id, msg_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS stored_messages_by_time ON stored_messages (stored_at);
CREATE TABLE IF NOT EXISTS derived (
    name TEXT PRIMARY KEY, upto INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO derived VALUES ('points', 0);
INSERT OR IGNORE INTO derived VALUES ('moved', 0);
INSERT OR IGNORE INTO derived VALUES ('moved_keys', 0);
"""

HOT_SCHEMA = """
CREATE TABLE IF NOT EXISTS hot.incoming (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sid INTEGER NOT NULL, value REAL NOT NULL, ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS hot.incoming_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id TEXT NOT NULL, device_id TEXT NOT NULL, msg_id TEXT NOT NULL,
    stored_at REAL NOT NULL
)
"""
"""The appended rows (`hot`): ids only grow, so `derived`'s marks in the main file say which
ones were moved, even if a crash came between the move's commit and their deletion here."""


def hot_path(path: Path) -> Path:
    """The file the ingest appends to, beside the store's `path`."""
    return path.with_name(f"{path.stem}.incoming{path.suffix}")


def attach_hot(conn: sqlite3.Connection, path: Path, *, prepare: bool = True) -> None:
    """Attach the append file as `hot`, in WAL mode; with `prepare`, create its tables, with
    ids above the main file's marks (a lost or replaced append file must not make new rows
    look moved already)."""
    conn.execute("ATTACH DATABASE ? AS hot", (str(hot_path(path)),))
    conn.execute("PRAGMA hot.journal_mode=WAL")
    conn.execute("PRAGMA hot.synchronous=NORMAL")
    if not prepare:
        return
    conn.execute("BEGIN")
    try:
        for statement in HOT_SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        for table, mark in (("incoming", "moved"), ("incoming_keys", "moved_keys")):
            moved = int(
                conn.execute("SELECT upto FROM main.derived WHERE name = ?", (mark,)).fetchone()[0]
            )
            row = conn.execute(
                "SELECT seq FROM hot.sqlite_sequence WHERE name = ?", (table,)
            ).fetchone()
            if row is None:
                conn.execute("INSERT INTO hot.sqlite_sequence VALUES (?, ?)", (table, moved))
            elif int(row[0]) < moved:
                conn.execute(
                    "UPDATE hot.sqlite_sequence SET seq = ? WHERE name = ?", (moved, table)
                )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def upgrade(conn: sqlite3.Connection) -> None:
    """Create the tables, or bring a file of an older version to this one, in one
    transaction (`conn` in autocommit mode)."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version >= SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Read again under the write lock: a replica starting at the same moment may have
        # upgraded the file while this one waited (its new `points` is no old table to copy).
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version >= SCHEMA_VERSION:
            conn.execute("COMMIT")
            return
        # Versions 1 and 2 named the series in every row: their points are copied.
        old = (
            version < 3
            and conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'points'"
            ).fetchone()
            is not None
        )
        if old:
            # Index names are the file's, not the table's: free them for the new table.
            conn.execute("DROP INDEX IF EXISTS points_by_series")
            conn.execute("ALTER TABLE points RENAME TO points_old")
        conn.execute("DROP INDEX IF EXISTS points_by_ts")  # versions 2 and 3
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        if old:
            _copy(conn, version)
        if version >= 2:
            _latest_of_uncounted(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _copy(conn: sqlite3.Connection, version: int) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO series (site_id, device_id, series)"
        " SELECT DISTINCT site_id, device_id, series FROM points_old"
    )
    join = (
        " FROM points_old AS p JOIN series AS s"
        " ON s.site_id = p.site_id AND s.device_id = p.device_id AND s.series = p.series"
    )
    if version >= 2:
        # The row ids are kept: the rollups' watermark counts in them (`_stage_underived`).
        conn.execute(
            f"INSERT INTO points (id, sid, value, ts) SELECT p.id, s.sid, p.value, p.ts{join}"
        )
    else:
        # Version 1 had no row id, and its rollups already count every row.
        conn.execute(f"INSERT INTO points (sid, value, ts) SELECT s.sid, p.value, p.ts{join}")
        conn.execute("UPDATE derived SET upto = (SELECT coalesce(max(id), 0) FROM points)")
    conn.execute("DROP TABLE points_old")


def _latest_of_uncounted(conn: sqlite3.Connection) -> None:
    """Versions 2 to 4 made the rollups and latest values of the rows above a watermark
    later: those rows stay in `points` (the prune rolls them up: their ids are above the
    'points' mark), and their latest values are brought up to date here."""
    upto = int(conn.execute("SELECT upto FROM derived WHERE name = 'points'").fetchone()[0])
    conn.execute(LATEST_OF.format(rows="points"), (upto, 2**63 - 1))
