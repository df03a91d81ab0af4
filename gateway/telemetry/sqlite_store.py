"""The embedded time-series store: one SQLite file of its own, in WAL mode.

Raw points are kept for a window (default 7 days); minute rollups (min, max, sum, count) for
longer (default 90 days), so a chart over a month reads rollups; `latest` keeps the newest
value of every series. A raw point is (series id, value, time): each series (site, device,
series) is named once, in `series` (`gateway.telemetry.sqlite_schema`, which also upgrades
older files in place). Writes come in batches (`executemany` of prebuilt statements on the
plain sqlite3 driver, one transaction per batch): a transaction per point, or per-row ORM
work, would cap the store at a few thousand points per second.

The hot path appends raw rows to `incoming` only (no index to keep in order). `derive` updates
the latest values from them and moves them into `points`, indexed by (series, time), in one
transaction, so the index grows in order, a page at a time, instead of a page written for
every point (`gateway.telemetry.sqlite_schema`, version 5). Readers and `prune` derive first,
so they never miss a row; the gateway derives every `telemetry.derive_interval_s`. A raw row
is counted into the minute rollups when it leaves the raw window (`prune`, in the transaction
that deletes it: each row exactly once, late ones too), and a chart reaching past the raw
window reads the rollups before it and the raw rows after: so the ingest's rows are not
rolled up twice (once on the way in, again and again as late rows merge), only once, in
order, when they are old.

A device's message is stored at most once: `write_messages` records its (site, device,
msg_id) in the same transaction as its points, and skips a message already recorded. That
is what lets the ingest write points only after the ticket transaction committed, and write
them again for a redelivery of a message the database already had (a gateway killed between
the commit and the point write), without a loss or a double (see `gateway.telemetry.sink`).

It is not the gateway database on purpose: a flood of readings never holds a lock the
ticket transactions need, and PostgreSQL deployments do not grow a time-series table.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.telemetry.points import MsgKey, Point
from gateway.telemetry.sqlite_schema import upgrade

DAY_S = 86_400.0
RAW_RETENTION_S = 7 * DAY_S
ROLLUP_RETENTION_S = 90 * DAY_S
DERIVE_CHUNK = 200_000
"""Raw rows derived per transaction (bounds how long a reader or writer waits on `derive`)."""

_INSERT_POINT = "INSERT INTO incoming (sid, value, ts) VALUES (?, ?, ?)"
_COUNTED = "SELECT coalesce(max(upto), 0) FROM derived WHERE name = 'points'"
_INSERT_STORED = "INSERT INTO stored_messages VALUES (?, ?, ?, ?)"
_HAS_MESSAGE = "SELECT 1 FROM stored_messages WHERE site_id = ? AND device_id = ? AND msg_id = ?"
_NEWEST = "SELECT value, ts FROM points WHERE sid = ? ORDER BY ts DESC LIMIT 1"
_SIDS = "SELECT sid FROM series WHERE device_id = ? AND series = ?"
_PRUNE = "DELETE FROM points WHERE sid IN (SELECT sid FROM series) AND ts < ?"
"""Old raw rows, found series by series through `points_by_series` (sid, ts): the table has
no index on time alone, which every point would pay for (`sqlite_schema`, version 4)."""
WAL_BACKSTOP_PAGES = 16_384
"""SQLite checkpoints by itself only past this many WAL pages (64 MB): the gateway's clock
checkpoints every tick (`checkpoint`), off the write lock. SQLite's default, 1,000 pages,
made the commit that crossed it copy the WAL into the file and fsync, under the write lock:
~2.7 µs a point of the store's move (measured here), and the ingest waited for it."""
SID_CACHE = 100_000
"""Series ids kept in memory (names come from devices: bounded, emptied when full)."""

_ROLLUP = """
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
"""The raw rows leaving the raw window, into the minute rollups (`prune`, in the transaction
that deletes them, so each is counted once); rows at or below the `derived` mark were counted
by an older gateway already (`sqlite_schema`, version 5)."""

# SQLite: with max(), the bare columns come from the row holding the maximum.
_LATEST = """
INSERT INTO latest (device_id, series, site_id, ts, value)
SELECT s.device_id, s.series, s.site_id, max(p.ts), p.value
FROM incoming AS p JOIN series AS s ON s.sid = p.sid
WHERE p.id BETWEEN ? AND ? GROUP BY p.sid
ON CONFLICT (device_id, series) DO UPDATE SET ts = excluded.ts, value = excluded.value
WHERE excluded.ts >= latest.ts
"""

# In (series, time) order: the index on `points` grows a page at a time.
_MOVE = """
INSERT INTO points (sid, value, ts)
SELECT sid, value, ts FROM incoming WHERE id BETWEEN ? AND ? ORDER BY sid, ts
"""


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
    """The embedded store (a `PointWriter`, plus the queries the API and rules need)."""

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
        self._sids: dict[tuple[str, str, str], int] = {}
        self._newest: dict[int, tuple[float, float]] = {}
        """ESPHome state series: the (value, time) a repeat is compared with. This process is
        the series' one writer (the telemetry lease's owner), so it stays true once read."""
        self._states_ready = False
        """Whether every state row in `incoming` is in `_newest` (true after this process
        derived once; `incoming` has no index to look a series up in)."""
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
        """Copy the WAL into the file (SQLite's PASSIVE checkpoint, on a connection of its
        own: it never waits for, nor holds up, a write); WAL pages copied."""
        with self._checkpoint_lock:
            if self._checkpointer is None:
                self._checkpointer = sqlite3.connect(
                    self.path, check_same_thread=False, isolation_level=None
                )
                self._checkpointer.execute("PRAGMA busy_timeout=5000")
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
        keys: list[tuple[str, str, str, float]] = []
        with self._lock:
            conn = self._conn
            if states and not self._states_ready:
                self._derive()  # what earlier processes appended: into the series index
                self._states_ready = True
            new: dict[tuple[str, str, str], int] = {}  # cached only once committed
            newest: dict[int, tuple[float, float]] = {}
            conn.execute("BEGIN")
            try:
                have = self._stored(recheck) if recheck else set()
                for key, points in messages:
                    if key is not None:
                        if key in have:
                            continue
                        have.add(key)
                        keys.append((*key, now))
                    rows += points
                if states:
                    rows += self._new_states(states, new, newest)
                conn.executemany(_INSERT_POINT, self._bind(rows, new))
                if keys:
                    conn.executemany(_INSERT_STORED, keys)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if len(self._sids) + len(new) > SID_CACHE:
                self._sids.clear()
            self._sids.update(new)
            if len(self._newest) + len(newest) > SID_CACHE:
                self._newest.clear()
                self._states_ready = False
            self._newest.update(newest)
            self.written += len(rows)
        return rows

    def _sid(self, name: tuple[str, str, str], new: dict[tuple[str, str, str], int]) -> int:
        """The id of series `name` (site, device, series), made if it is new."""
        sid = self._sids.get(name)
        if sid is None:
            sid = new.get(name)
        if sid is None:
            self._conn.execute(
                "INSERT OR IGNORE INTO series (site_id, device_id, series) VALUES (?, ?, ?)", name
            )
            row = self._conn.execute(
                "SELECT sid FROM series WHERE site_id = ? AND device_id = ? AND series = ?", name
            ).fetchone()
            sid = new[name] = int(row[0])
        return sid

    def _bind(
        self, points: Sequence[Point], new: dict[tuple[str, str, str], int]
    ) -> list[tuple[int, float, float]]:
        sids, rows = self._sids, []
        for site, device, series, value, ts in points:
            sid = sids.get((site, device, series))
            if sid is None:
                sid = self._sid((site, device, series), new)
            rows.append((sid, value, ts))
        return rows

    def _new_states(
        self,
        states: Sequence[tuple[Point, float]],
        new: dict[tuple[str, str, str], int],
        newest: dict[int, tuple[float, float]],
    ) -> list[Point]:
        """The states that are not a repeat; `newest` gets each series' (value, time) to
        compare the next one with (ESPHome: a few per node a minute; each series is read
        from the series index once per process, `_newest` remembers it after: see
        `_states_ready`)."""
        out: list[Point] = []
        for point, window in states:
            sid = self._sid((point.site_id, point.device_id, point.series), new)
            last = newest.get(sid) or self._newest.get(sid) or self._read_newest(sid)
            newest[sid] = (point.value, point.ts)
            if last is not None and last[0] == point.value and 0 <= point.ts - last[1] < window:
                newest[sid] = last  # the window runs from the first delivery
                continue
            out.append(point)
        return out

    def _read_newest(self, sid: int) -> tuple[float, float] | None:
        row = self._conn.execute(_NEWEST, (sid,)).fetchone()
        return (float(row[0]), float(row[1])) if row is not None else None

    def _stored(self, keys: Collection[MsgKey]) -> set[MsgKey]:
        """The keys this store holds, each looked up by its primary key (only redeliveries
        are rechecked: a few a batch; a query on `msg_id` alone scanned the whole week of
        message ids, `_HAS_MESSAGE`)."""
        conn = self._conn
        return {key for key in keys if conn.execute(_HAS_MESSAGE, key).fetchone() is not None}

    def stored(self, key: MsgKey) -> bool:
        """Whether a message's points are in the store (tests)."""
        with self._lock:
            return key in self._stored([key])

    def derive(self) -> int:
        """Move the appended rows into the series index, updating the latest values; rows
        moved."""
        with self._lock:
            return self._derive()

    def _derive(self) -> int:
        conn = self._conn
        total = 0
        while True:
            # The write lock first: what is read below is what is counted, moved and deleted
            # (another process may append, or derive, meanwhile).
            conn.execute("BEGIN IMMEDIATE")
            try:
                lo = conn.execute("SELECT min(id) FROM incoming").fetchone()[0]
                if lo is None:
                    conn.execute("COMMIT")
                    return total
                span = (int(lo), int(lo) + DERIVE_CHUNK - 1)
                conn.execute(_LATEST, span)
                conn.execute(_MOVE, span)
                total += conn.execute(
                    "DELETE FROM incoming WHERE id BETWEEN ? AND ?", span
                ).rowcount
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def prune(self, now: float) -> int:
        """Roll the raw points past the raw window into the minute rollups and drop them,
        and drop rollups past theirs; rows deleted."""
        cutoff = now - self.raw_retention_s
        with self._lock:
            conn = self._conn
            self._derive()  # late rows too: into `points`, so they are rolled up below
            conn.execute("BEGIN IMMEDIATE")
            try:
                counted = int(conn.execute(_COUNTED).fetchone()[0])
                conn.execute(_ROLLUP, (cutoff, counted))
                raw = conn.execute(_PRUNE, (cutoff,)).rowcount
                conn.execute("DELETE FROM stored_messages WHERE stored_at < ?", (cutoff,))
                old = conn.execute(
                    "DELETE FROM minutes WHERE minute < ?",
                    (int((now - self.rollup_retention_s) // 60),),
                ).rowcount
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return int(raw) + int(old)

    def buckets(
        self, device_id: str, series: str, start: float, end: float, bucket_s: float
    ) -> list[Bucket]:
        """Min/max/avg of a series in buckets of `bucket_s` over [start, end): from the raw
        points when they reach back to `start`; else, in buckets of a minute at least, from
        the minute rollups of what left the raw window and the raw points after it."""
        with self._lock:
            self._derive()
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
                counted = int(self._conn.execute(_COUNTED).fetchone()[0])
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
            self._derive()
            rows = self._conn.execute(
                "SELECT series, ts, value FROM latest WHERE device_id = ? ORDER BY series",
                (device_id,),
            ).fetchall()
        return [Latest(str(s), float(t), float(v)) for s, t, v in rows]

    def count(self) -> int:
        """Raw points stored (tests and the benchmark)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT (SELECT count(*) FROM points) + (SELECT count(*) FROM incoming)"
            ).fetchone()
            return int(row[0])

    def close(self) -> None:
        """Close the file (the last connection to close checkpoints it)."""
        with self._checkpoint_lock:
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
        with self._lock:
            self._conn.close()
