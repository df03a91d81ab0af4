"""The embedded store's upkeep: moving what the ingest appended, and retention.

Functions of a connection to the main file with the append file attached as `hot`
(`gateway.telemetry.sqlite_schema`); `SqliteTelemetryStore` calls them under its upkeep
lock, on a connection the ingest does not use.

- `move`: the rows appended to `hot.incoming` go into `points` in (series, time) order, so
  the series index grows a page at a time, and update the latest values; the message ids in
  `hot.incoming_keys` go into `stored_messages`. In one transaction of the main file, which
  also records how far it got ('moved', 'moved_keys' in `derived`); the moved rows are
  deleted from the append file after it. A crash between the two leaves rows there that
  are below the marks: they are deleted first on the next move, never moved twice. The
  append file is only read inside the transaction (a snapshot), so the ingest appends on
  meanwhile: SQLite has one writer a file, and these are two files.
- `prune`: the raw rows leaving the raw window are rolled into the minute rollups in the
  transaction that deletes them (each exactly once; rows at or below the 'points' mark were
  counted by an older version already), and old rollups and message ids go.
"""

from __future__ import annotations

import sqlite3

MOVE_CHUNK = 200_000
"""Rows moved per transaction (bounds how long a chart or a prune waits on a move)."""

_MARK = "SELECT upto FROM derived WHERE name = ?"
_TAKE_MAIN = "UPDATE derived SET upto = upto WHERE name = 'moved'"
TAKE_HOT = "UPDATE hot.sqlite_sequence SET seq = seq WHERE name = 'incoming'"
"""A write to the append file first: its write lock, taken before anything of it is read
(a transaction that read first and wrote after would fail at once, SQLITE_BUSY_SNAPSHOT,
if another connection wrote the file in between)."""
"""A write to the main file first: its write lock, not the append file's (BEGIN IMMEDIATE
would take both), so what is read of `hot` below is what is moved."""

# SQLite: with max(), the bare columns come from the row holding the maximum.
LATEST_OF = """
INSERT INTO latest (device_id, series, site_id, ts, value)
SELECT s.device_id, s.series, s.site_id, max(p.ts), p.value
FROM {rows} AS p JOIN series AS s ON s.sid = p.sid
WHERE p.id > ? AND p.id <= ? GROUP BY p.sid
ON CONFLICT (device_id, series) DO UPDATE SET ts = excluded.ts, value = excluded.value
WHERE excluded.ts >= latest.ts
"""
"""The latest values of the rows of table `{rows}` with ids in (?, ?]."""
_LATEST = LATEST_OF.format(rows="hot.incoming")

# In (series, time) order: the index on `points` grows a page at a time.
_MOVE = """
INSERT INTO points (sid, value, ts)
SELECT sid, value, ts FROM hot.incoming WHERE id > ? AND id <= ? ORDER BY sid, ts
"""

_MOVE_KEYS = """
INSERT OR IGNORE INTO stored_messages (site_id, device_id, msg_id, stored_at)
SELECT site_id, device_id, msg_id, stored_at FROM hot.incoming_keys WHERE id > ? AND id <= ?
ORDER BY site_id, device_id, msg_id
"""

ROLLUP = """
INSERT INTO minutes (site_id, device_id, series, minute, vmin, vmax, vsum, n)
SELECT s.site_id, s.device_id, s.series, CAST(p.ts / 60 AS INTEGER) AS m, min(p.value),
       max(p.value), sum(p.value), count(*)
FROM points AS p JOIN series AS s ON s.sid = p.sid
WHERE p.sid IN (SELECT sid FROM series) AND p.ts < ? AND p.id > ?
GROUP BY s.device_id, s.series, m
ON CONFLICT (device_id, series, minute) DO UPDATE SET
    vmin = min(vmin, excluded.vmin), vmax = max(vmax, excluded.vmax),
    vsum = vsum + excluded.vsum, n = n + excluded.n
"""
"""The raw rows leaving the raw window, into the minute rollups."""

PRUNE = "DELETE FROM points WHERE sid IN (SELECT sid FROM series) AND ts < ?"
"""Old raw rows, found series by series through `points_by_series` (sid, ts): the table has
no index on time alone, which every point would pay for (`sqlite_schema`, version 4)."""


def mark(conn: sqlite3.Connection, name: str) -> int:
    """A mark of `derived`: 'points' (rows counted by an older version), 'moved', 'moved_keys'."""
    return int(conn.execute(_MARK, (name,)).fetchone()[0])


def move(conn: sqlite3.Connection) -> int:
    """Move everything appended so far into the main file; rows moved."""
    total = 0
    while True:
        _forget_moved(conn)
        conn.execute("BEGIN")
        try:
            conn.execute(_TAKE_MAIN)
            moved, keys_moved = mark(conn, "moved"), mark(conn, "moved_keys")
            top = conn.execute("SELECT max(id) FROM hot.incoming").fetchone()[0]
            keys_top = conn.execute("SELECT max(id) FROM hot.incoming_keys").fetchone()[0]
            hi = min(int(top), moved + MOVE_CHUNK) if top is not None else moved
            keys_hi = int(keys_top) if keys_top is not None else keys_moved
            if hi <= moved and keys_hi <= keys_moved:
                conn.execute("COMMIT")
                return total
            if hi > moved:
                conn.execute(_LATEST, (moved, hi))
                total += conn.execute(_MOVE, (moved, hi)).rowcount
                conn.execute("UPDATE derived SET upto = ? WHERE name = 'moved'", (hi,))
            if keys_hi > keys_moved:
                conn.execute(_MOVE_KEYS, (keys_moved, keys_hi))
                conn.execute("UPDATE derived SET upto = ? WHERE name = 'moved_keys'", (keys_hi,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _forget_moved(conn: sqlite3.Connection) -> None:
    """Delete from the append file what the main file already holds (a short write of the
    append file, between the ingest's). When that is every row of a table, which it is
    unless the ingest appended during the move, the table is emptied whole: SQLite then
    hands its pages to the free list instead of rewriting each one row by row (the ids
    still only grow: AUTOINCREMENT keeps its counter)."""
    conn.execute("BEGIN")
    try:
        conn.execute(TAKE_HOT)
        for table, name in (("incoming", "moved"), ("incoming_keys", "moved_keys")):
            upto = mark(conn, name)
            top = conn.execute(f"SELECT max(id) FROM hot.{table}").fetchone()[0]  # noqa: S608
            if top is None:
                continue
            if top <= upto:
                conn.execute(f"DELETE FROM hot.{table}")  # noqa: S608 (a name of two)
            else:
                conn.execute(f"DELETE FROM hot.{table} WHERE id <= ?", (upto,))  # noqa: S608
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def prune(conn: sqlite3.Connection, cutoff: float, rollup_cutoff: float) -> int:
    """Roll the raw rows older than `cutoff` into the minute rollups and delete them, and
    the rollups older than `rollup_cutoff` and message ids older than `cutoff`; rows
    deleted. Rows not moved yet wait for a later prune (late ones too)."""
    conn.execute("BEGIN")
    try:
        conn.execute(_TAKE_MAIN)
        conn.execute(ROLLUP, (cutoff, mark(conn, "points")))
        raw = conn.execute(PRUNE, (cutoff,)).rowcount
        conn.execute("DELETE FROM stored_messages WHERE stored_at < ?", (cutoff,))
        old = conn.execute(
            "DELETE FROM minutes WHERE minute < ?", (int(rollup_cutoff // 60),)
        ).rowcount
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return int(raw) + int(old)


def count(conn: sqlite3.Connection) -> int:
    """Raw points held: in `points`, and appended but not yet moved."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM points) + (SELECT count(*) FROM hot.incoming WHERE id > ?)",
        (mark(conn, "moved"),),
    ).fetchone()
    return int(row[0])
