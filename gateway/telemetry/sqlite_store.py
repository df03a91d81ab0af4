"""The embedded time-series store: one SQLite file of its own, in WAL mode.

Raw points are kept for a window (default 7 days); minute rollups (min, max, sum, count) for
longer (default 90 days), so a chart over a month reads rollups; `latest` keeps the newest
value of every series. A raw point is (series id, value, time): each series (site, device,
series) is named once, in `series` (`gateway.telemetry.sqlite_schema`, which also upgrades
older files in place). Writes come in batches (`executemany` of prebuilt statements on the
plain sqlite3 driver, one transaction per batch): a transaction per point, or per-row ORM
work, would cap the store at a few thousand points per second.

The hot path appends raw rows to `incoming` only (no index to keep in order). `derive` counts
them into the minute rollups and latest values and moves them into `points`, indexed by
(series, time), in one transaction, so each row is counted exactly once, late ones too, and
the index grows in order, a page at a time, instead of a page written for every point
(`gateway.telemetry.sqlite_schema`, version 5). Readers and `prune` derive first, so they never
see a stale rollup or miss a row; the gateway derives every `telemetry_tick_s`.

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
_INSERT_STORED = "INSERT INTO stored_messages VALUES (?, ?, ?, ?)"
_NEWEST = "SELECT value, ts FROM points WHERE sid = ? ORDER BY ts DESC LIMIT 1"
_NEWEST_INCOMING = "SELECT value, ts FROM incoming WHERE sid = ? ORDER BY ts DESC LIMIT 1"
"""Not indexed: read once per series and process, for ESPHome states (`_newest`)."""
_SIDS = "SELECT sid FROM series WHERE device_id = ? AND series = ?"
_PRUNE = "DELETE FROM points WHERE sid IN (SELECT sid FROM series) AND ts < ?"
"""Old raw rows, found series by series through `points_by_series` (sid, ts): the table has
no index on time alone, which every point would pay for (`sqlite_schema`, version 4)."""
SID_CACHE = 100_000
"""Series ids kept in memory (names come from devices: bounded, emptied when full)."""

_ROLLUP = """
INSERT INTO minutes (site_id, device_id, series, minute, vmin, vmax, vsum, n)
SELECT s.site_id, s.device_id, s.series, CAST(p.ts / 60 AS INTEGER) AS m, min(p.value),
       max(p.value), sum(p.value), count(*)
FROM incoming AS p JOIN series AS s ON s.sid = p.sid
WHERE p.id BETWEEN ? AND ? GROUP BY s.device_id, s.series, m
ON CONFLICT (device_id, series, minute) DO UPDATE SET
    vmin = min(vmin, excluded.vmin), vmax = max(vmax, excluded.vmax),
    vsum = vsum + excluded.vsum, n = n + excluded.n
"""

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

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable to the last checkpoint under WAL: a power cut loses at most the
        # last batches of readings, never corrupts the file, and writes do not fsync each time.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

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
        from the file once per process, `_newest` remembers it after)."""
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
        rows = [self._conn.execute(q, (sid,)).fetchone() for q in (_NEWEST, _NEWEST_INCOMING)]
        found = [(float(r[0]), float(r[1])) for r in rows if r is not None]
        return max(found, key=lambda r: r[1]) if found else None

    def _stored(self, keys: Collection[MsgKey]) -> set[MsgKey]:
        found: set[MsgKey] = set()
        wanted = list(keys)
        for i in range(0, len(wanted), 300):  # within SQLite's bound-parameter limit
            chunk = wanted[i : i + 300]
            marks = ",".join("?" * len(chunk))
            ids = [k[2] for k in chunk]
            for row in self._conn.execute(
                f"SELECT site_id, device_id, msg_id FROM stored_messages WHERE msg_id IN ({marks})",  # noqa: S608 (placeholders only)
                ids,
            ):
                found.add((str(row[0]), str(row[1]), str(row[2])))
        return found & set(keys)

    def stored(self, key: MsgKey) -> bool:
        """Whether a message's points are in the store (tests)."""
        with self._lock:
            return key in self._stored([key])

    def derive(self) -> int:
        """Bring the minute rollups and latest values up to the raw rows; rows derived."""
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
                conn.execute(_ROLLUP, span)
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
        """Drop raw points past the raw window and rollups past theirs; rows deleted."""
        with self._lock:
            self._derive()  # nothing leaves the raw window before it is in the rollups
            raw = self._conn.execute(_PRUNE, (now - self.raw_retention_s,)).rowcount
            self._conn.execute(
                "DELETE FROM stored_messages WHERE stored_at < ?", (now - self.raw_retention_s,)
            )
            old = self._conn.execute(
                "DELETE FROM minutes WHERE minute < ?",
                (int((now - self.rollup_retention_s) // 60),),
            ).rowcount
        return int(raw) + int(old)

    def buckets(
        self, device_id: str, series: str, start: float, end: float, bucket_s: float
    ) -> list[Bucket]:
        """Min/max/avg of a series in buckets of `bucket_s` over [start, end). Raw points
        inside the raw window; minute rollups before it (buckets of at least a minute)."""
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
                rows = self._conn.execute(
                    "SELECT CAST((minute * 60 - ?) / ? AS INTEGER) AS b, min(vmin), max(vmax),"
                    " sum(vsum), sum(n) FROM minutes"
                    " WHERE device_id = ? AND series = ? AND minute * 60 >= ? AND minute * 60 < ?"
                    " GROUP BY b ORDER BY b",
                    (start, max(bucket_s, 60.0), device_id, series, start, end),
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
        """Close the file."""
        with self._lock:
            self._conn.close()
