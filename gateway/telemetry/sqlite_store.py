"""The embedded time-series store: SQLite files of its own (the store and the file the ingest
appends to), in WAL mode.

Raw points are kept for a window (default 7 days); minute rollups (min, max, sum, count) for
longer (default 90 days), so a chart over a month reads rollups; `latest` keeps the newest
value of every series. A raw point is (series id, value, time): each series (site, device,
series) is named once, in `series` (`gateway.telemetry.sqlite_schema`, which also upgrades
older files in place). Writes come in batches (multi-row INSERTs of prebuilt statements on
the plain sqlite3 driver, one transaction per batch): a transaction per point, or per-row
ORM work, would cap the store at a few thousand points per second.

The hot path appends: raw rows and message ids go to a second file (`<name>.incoming<suffix>`,
no index but the row ids), and `derive` moves them into the main file in (series, time)
order, so the series index grows a page at a time instead of a page written for every point,
and the appends never wait for a move, a prune or a chart: SQLite has one writer a file
(`gateway.telemetry.sqlite_upkeep`; `sqlite_schema`, version 5). Readers move first, so
they never miss a row; the gateway moves every `telemetry.derive_interval_s`, or
sooner once `derive_after_points` are waiting. A raw row is counted into the minute rollups
when it leaves the raw window (`prune`, in the transaction that deletes it: each row exactly
once, late ones too), and a chart reaching past the raw window reads the rollups before it
and the raw rows after.

A device's message is stored at most once: `write_messages` records its (site, device,
msg_id) in the same transaction as its points, and skips a message already recorded. That
is what lets the ingest write points only after the ticket transaction committed, and write
them again for a redelivery of a message the database already had (a gateway killed between
the commit and the point write), without a loss or a double (see `gateway.telemetry.sink`).

It is not the gateway database on purpose: a flood of readings never holds a lock the
ticket transactions need, and PostgreSQL deployments do not grow a time-series table.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.telemetry import sqlite_upkeep as upkeep
from gateway.telemetry.points import MsgKey, Point
from gateway.telemetry.sqlite_schema import attach_hot, upgrade

DAY_S = 86_400.0
RAW_RETENTION_S = 7 * DAY_S
ROLLUP_RETENTION_S = 90 * DAY_S

ROWS_PER_INSERT = 100
"""Rows a statement appends (`_append`): the append tables count their ids (AUTOINCREMENT),
which SQLite does once a statement, so an executemany paid it for every row. 100 rows a
statement appended a row in ~0.6 µs against ~1.2-2.0 (500 rows, measured here), and stays
within SQLite's oldest bound-parameter limit (999)."""

_POINTS = "INSERT INTO hot.incoming (sid, value, ts) VALUES "
_KEYS = "INSERT INTO hot.incoming_keys (site_id, device_id, msg_id, stored_at) VALUES "
_HAS_MESSAGE = "SELECT 1 FROM stored_messages WHERE site_id = ? AND device_id = ? AND msg_id = ?"
_APPENDED_KEYS = "SELECT site_id, device_id, msg_id FROM hot.incoming_keys WHERE msg_id IN ({})"
"""No index: the append file holds a few seconds of message ids, and only redeliveries are
looked up."""
_NEWEST = "SELECT value, ts FROM points WHERE sid = ? ORDER BY ts DESC LIMIT 1"
_SIDS = "SELECT sid FROM series WHERE device_id = ? AND series = ?"
_SID = "SELECT sid FROM series WHERE site_id = ? AND device_id = ? AND series = ?"
WAL_BACKSTOP_PAGES = 16_384
"""SQLite checkpoints by itself only past this many WAL pages (64 MB): the gateway's clock
checkpoints every tick (`checkpoint`), off the write locks. SQLite's default, 1,000 pages,
made the commit that crossed it copy the WAL into the file and fsync, under the write lock:
~2.7 µs a point of the store's move (measured here), and the ingest waited for it."""
SID_CACHE = 100_000
"""Series ids kept in memory (names come from devices: bounded, emptied when full)."""


@dataclass(frozen=True)
class Bucket:
    """One time bucket of a series: its start and the min, max, mean and count in it."""

    start: float
    min: float
    max: float
    avg: float
    count: int


@dataclass(frozen=True)
class Latest:
    """The newest value of one series."""

    series: str
    ts: float
    value: float


class SqliteTelemetryStore:
    """The embedded store (a `PointWriter`, plus the queries the API and rules need).

    Two connections, each with a lock of its own: the ingest's (`write_messages`), and the
    upkeep's and readers' (`derive`, `prune`, `buckets`, `latest`), so neither waits for
    the other except on SQLite's locks, which are per file (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        *,
        raw_retention_s: float = RAW_RETENTION_S,
        rollup_retention_s: float = ROLLUP_RETENTION_S,
    ) -> None:
        self.path = path
        self.raw_retention_s = raw_retention_s
        self.rollup_retention_s = rollup_retention_s
        self.written = 0
        """Points written since start."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = self._connect()
        upgrade(self._conn)
        attach_hot(self._conn, path)
        self._write_lock = threading.Lock()
        self._writer = self._connect()
        attach_hot(self._writer, path)
        self._sids: dict[tuple[str, str, str], int] = {}
        self._newest: dict[int, tuple[float, float]] = {}
        """ESPHome state series: the (value, time) a repeat is compared with. This process is
        the series' one writer (the telemetry lease's owner), so it stays true once read."""
        self._states_ready = False
        """Whether every state row not yet moved is in `_newest` (true after this process
        moved once; the append file has no index to look a series up in)."""
        self._checkpoint_lock = threading.Lock()
        self._checkpointer: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable to the last checkpoint under WAL: a power cut loses at most the
        # last batches of readings, never corrupts the file, and writes do not fsync each time.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}")
        return conn

    def checkpoint(self) -> int:
        """Copy both files' WALs into the files (SQLite's PASSIVE checkpoint, on a
        connection of its own: it never waits for, nor holds up, a write); WAL pages copied."""
        with self._checkpoint_lock:
            if self._checkpointer is None:
                self._checkpointer = self._connect()
                attach_hot(self._checkpointer, self.path, prepare=False)
            row = self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(row[2]) if row is not None and int(row[2]) >= 0 else 0

    def write(self, points: Sequence[Point]) -> None:
        """Store a batch in one transaction (readings with no message id: ESPHome's)."""
        if points:
            self.write_messages([(None, points)])

    def write_messages(
        self,
        messages: Sequence[tuple[MsgKey | None, Sequence[Point]]],
        *,
        recheck: Collection[MsgKey] = (),
        now: float = 0.0,
        states: Sequence[tuple[Point, float]] = (),
    ) -> list[Point]:
        """Store messages' points in one transaction, each message at most once.

        A message with a key is recorded with its points; a key in `recheck` (one the
        gateway found already processed: a redelivery) is looked up first and skipped if
        this store has it. `states` are (point, window) pairs of ESPHome, which has no
        message id: one is skipped when its series' newest point has the same value and is
        less than `window` seconds older (the same state delivered again). Returns the
        points written."""
        rows: list[Point] = []
        keys: list[str | float] = []  # (site, device, msg id, stored at), flat
        bound: list[int | float] = []  # (series id, value, time), flat
        with self._write_lock:
            conn = self._writer
            if states and not self._states_ready:
                self.derive()  # what earlier processes appended: into the series index
                self._states_ready = True
            # Series ids first, outside the append's transaction: it then writes the append
            # file alone (a new series is made in the main file, committed at once).
            each = [self._bind(points) for _, points in messages]
            state_sids = [self._sid(p[:3]) for p, _ in states]
            newest: dict[int, tuple[float, float]] = {}
            conn.execute("BEGIN")
            try:
                if recheck:
                    # The append file's write lock before reading it: a transaction that read
                    # first and writes after fails at once (SQLITE_BUSY_SNAPSHOT, no waiting)
                    # if a move deleted from the file in between.
                    conn.execute(upkeep.TAKE_HOT)
                have = self._stored(conn, recheck) if recheck else set()
                for (key, points), binds in zip(messages, each, strict=True):
                    if key is not None:
                        if key in have:
                            continue
                        have.add(key)
                        keys += (*key, now)
                    rows += points
                    bound += binds
                if states:
                    fresh = self._new_states(states, state_sids, newest)
                    rows += [p for p, _ in fresh]
                    for p, sid in fresh:
                        bound += (sid, p.value, p.ts)
                _append(conn, _POINTS, 3, bound)
                _append(conn, _KEYS, 4, keys)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if len(self._newest) + len(newest) > SID_CACHE:
                self._newest.clear()
                self._states_ready = False
            self._newest.update(newest)
            self.written += len(rows)
        return rows

    def _sid(self, name: tuple[str, str, str]) -> int:
        """The id of series `name` (site, device, series), made if it is new: in the main
        file, committed at once (a series without points is harmless; it waits for a move
        only the first time a series is seen). Looked up first: a process that starts
        meets every series of the file again, and an INSERT OR IGNORE is a write
        transaction even when it ignores (it waits for a move holding the file)."""
        sid = self._sids.get(name)
        if sid is None:
            conn = self._writer
            row = conn.execute(_SID, name).fetchone()
            if row is None:
                conn.execute(
                    "INSERT OR IGNORE INTO series (site_id, device_id, series) VALUES (?, ?, ?)",
                    name,
                )
                row = conn.execute(_SID, name).fetchone()
            if len(self._sids) >= SID_CACHE:
                self._sids.clear()
            sid = self._sids[name] = int(row[0])
        return sid

    def _bind(self, points: Sequence[Point]) -> list[int | float]:
        """The points' rows of the append, flat: (series id, value, time) each."""
        sids: dict[tuple[str, str, str], int] = self._sids
        rows: list[int | float] = []
        for site, device, series, value, ts in points:
            sid = sids.get((site, device, series))
            if sid is None:
                sid = self._sid((site, device, series))
            rows += (sid, value, ts)
        return rows

    def _new_states(
        self,
        states: Sequence[tuple[Point, float]],
        sids: Sequence[int],
        newest: dict[int, tuple[float, float]],
    ) -> list[tuple[Point, int]]:
        """The states that are not a repeat, with their series ids; `newest` gets each
        series' (value, time) to compare the next one with (ESPHome: a few per node a
        minute; each series is read from the series index once per process, `_newest`
        remembers it after: see `_states_ready`)."""
        out: list[tuple[Point, int]] = []
        for (point, window), sid in zip(states, sids, strict=True):
            last = newest.get(sid) or self._newest.get(sid) or self._read_newest(sid)
            newest[sid] = (point.value, point.ts)
            if last is not None and last[0] == point.value and 0 <= point.ts - last[1] < window:
                newest[sid] = last  # the window runs from the first delivery
                continue
            out.append((point, sid))
        return out

    def _read_newest(self, sid: int) -> tuple[float, float] | None:
        row = self._writer.execute(_NEWEST, (sid,)).fetchone()
        return (float(row[0]), float(row[1])) if row is not None else None

    @staticmethod
    def _stored(conn: sqlite3.Connection, keys: Collection[MsgKey]) -> set[MsgKey]:
        """The keys this store holds: appended and not yet moved (read first: a move commits
        the main file before it deletes them here, so a key is always in one or the other),
        then in the main file, each by its primary key (a query on `msg_id` alone scanned
        the whole week of message ids)."""
        wanted = list(keys)
        found: set[MsgKey] = set()
        for i in range(0, len(wanted), 300):  # within SQLite's bound-parameter limit
            chunk = wanted[i : i + 300]
            query = _APPENDED_KEYS.format(",".join("?" * len(chunk)))
            found.update(
                (str(r[0]), str(r[1]), str(r[2]))
                for r in conn.execute(query, [k[2] for k in chunk])
            )
        found &= set(wanted)
        return found | {
            key
            for key in wanted
            if key not in found and conn.execute(_HAS_MESSAGE, key).fetchone() is not None
        }

    def stored(self, key: MsgKey) -> bool:
        """Whether a message's points are in the store (tests)."""
        with self._lock:
            return key in self._stored(self._conn, [key])

    def derive(self) -> int:
        """Move the appended rows into the series index, updating the latest values; rows
        moved (`gateway.telemetry.sqlite_upkeep.move`)."""
        with self._lock:
            return upkeep.move(self._conn)

    def prune(self, now: float) -> int:
        """Roll the raw points past the raw window into the minute rollups and drop them,
        and drop rollups past theirs; rows deleted."""
        with self._lock:
            # No move first: rows still to move are rolled up by a later prune, once moved.
            return upkeep.prune(
                self._conn, now - self.raw_retention_s, now - self.rollup_retention_s
            )

    def buckets(
        self, device_id: str, series: str, start: float, end: float, bucket_s: float
    ) -> list[Bucket]:
        """Min/max/avg of a series in buckets of `bucket_s` over [start, end): from the raw
        points when they reach back to `start`; else, in buckets of a minute at least, from
        the minute rollups of what left the raw window and the raw points after it."""
        with self._lock:
            upkeep.move(self._conn)
            # A device that moved to another site has a series id per site.
            sids = [int(r[0]) for r in self._conn.execute(_SIDS, (device_id, series))]
            marks = ",".join("?" * len(sids))
            oldest_raw = self._conn.execute(
                f"SELECT min(ts) FROM points WHERE sid IN ({marks})",  # noqa: S608 (placeholders only)
                sids,
            ).fetchone()[0]
            if oldest_raw is not None and start >= oldest_raw:
                rows = self._conn.execute(
                    "SELECT CAST((ts - ?) / ? AS INTEGER) AS b, min(value), max(value),"  # noqa: S608 (placeholders only)
                    f" sum(value), count(*) FROM points WHERE sid IN ({marks})"
                    " AND ts >= ? AND ts < ? GROUP BY b ORDER BY b",
                    (start, bucket_s, *sids, start, end),
                ).fetchall()
            else:
                # The rollups of the rows that left the raw window, and the raw rows (not
                # those an older gateway counted already), in buckets of a minute at least.
                step = max(bucket_s, 60.0)
                counted = upkeep.mark(self._conn, "points")
                rollups = (start, step, device_id, series, start, end)
                raw = (start, step, *sids, start, end, counted)
                rows = self._conn.execute(
                    "SELECT b, min(lo), max(hi), sum(total), sum(n) FROM ("  # noqa: S608 (placeholders only)
                    " SELECT CAST((minute * 60 - ?) / ? AS INTEGER) AS b, vmin AS lo,"
                    " vmax AS hi, vsum AS total, n FROM minutes WHERE device_id = ?"
                    " AND series = ? AND minute * 60 >= ? AND minute * 60 < ?"
                    " UNION ALL SELECT CAST((ts - ?) / ? AS INTEGER), value, value, value, 1"
                    f" FROM points WHERE sid IN ({marks}) AND ts >= ? AND ts < ? AND id > ?"
                    ") GROUP BY b ORDER BY b",
                    (*rollups, *raw),
                ).fetchall()
        step = bucket_s if oldest_raw is not None and start >= oldest_raw else max(bucket_s, 60.0)
        return [
            Bucket(start + b * step, float(lo), float(hi), float(total) / int(n), int(n))
            for b, lo, hi, total, n in rows
        ]

    def latest(self, device_id: str) -> list[Latest]:
        """The newest value of every series of a device."""
        with self._lock:
            upkeep.move(self._conn)
            rows = self._conn.execute(
                "SELECT series, ts, value FROM latest WHERE device_id = ? ORDER BY series",
                (device_id,),
            ).fetchall()
        return [Latest(str(s), float(t), float(v)) for s, t, v in rows]

    def count(self) -> int:
        """Raw points stored (tests and the benchmark)."""
        with self._lock:
            return upkeep.count(self._conn)

    def close(self) -> None:
        """Close both files (the last connection to close a file checkpoints it)."""
        with self._checkpoint_lock:
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
        with self._write_lock:
            self._writer.close()
        with self._lock:
            self._conn.close()


def _append(conn: sqlite3.Connection, insert: str, width: int, values: Sequence[object]) -> None:
    """Append the rows of `values` (flat, `width` columns a row) with `insert` ("INSERT INTO
    … VALUES "): `ROWS_PER_INSERT` rows a statement, the rest in one more (a statement text
    per row count, at most `ROWS_PER_INSERT` of them: the connection caches each)."""
    chunk = ROWS_PER_INSERT * width
    for start in range(0, len(values), chunk):
        part = values[start : start + chunk]
        conn.execute(_statement(insert, width, len(part) // width), part)


@functools.cache
def _statement(insert: str, width: int, rows: int) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return insert + ", ".join([row] * rows)
