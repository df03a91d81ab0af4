"""The embedded time-series store: one SQLite file of its own, in WAL mode.

Raw points are kept for a window (default 7 days); minute rollups (min, max, sum, count) for
longer (default 90 days), so a chart over a month reads rollups. Writes come in batches from
the sink's one thread (`executemany`, one transaction per batch: a transaction per point
would cap the store at a few thousand points per second). Readers (the API) share the one
connection under a lock: a query waits at most for the batch being written.

It is not the gateway database on purpose: a flood of readings never holds a lock the
ticket transactions need, and PostgreSQL deployments do not grow a time-series table.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.telemetry.points import Point

DAY_S = 86_400.0
RAW_RETENTION_S = 7 * DAY_S
ROLLUP_RETENTION_S = 90 * DAY_S

_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    site_id TEXT NOT NULL, device_id TEXT NOT NULL, series TEXT NOT NULL,
    ts REAL NOT NULL, value REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS points_by_series ON points (device_id, series, ts);
CREATE INDEX IF NOT EXISTS points_by_ts ON points (ts);
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
"""

_ROLLUP = """
INSERT INTO minutes (site_id, device_id, series, minute, vmin, vmax, vsum, n)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (device_id, series, minute) DO UPDATE SET
    vmin = min(vmin, excluded.vmin), vmax = max(vmax, excluded.vmax),
    vsum = vsum + excluded.vsum, n = n + excluded.n
"""

_LATEST = """
INSERT INTO latest (device_id, series, site_id, ts, value) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (device_id, series) DO UPDATE SET ts = excluded.ts, value = excluded.value
WHERE excluded.ts >= latest.ts
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
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = self._connect()
        with self._conn:
            self._conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable to the last checkpoint under WAL: a power cut loses at most the
        # last batches of readings, never corrupts the file, and writes do not fsync each time.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    def write(self, points: Sequence[Point]) -> None:
        """Store a batch in one transaction: raw rows, minute rollups, latest values."""
        if not points:
            return
        rows = [(p.site_id, p.device_id, p.series, p.ts, p.value) for p in points]
        minutes: dict[tuple[str, str, str, int], list[float]] = {}
        newest: dict[tuple[str, str], Point] = {}
        for p in points:
            key = (p.site_id, p.device_id, p.series, int(p.ts // 60))
            agg = minutes.get(key)
            if agg is None:
                minutes[key] = [p.value, p.value, p.value, 1.0]
            else:
                agg[0] = min(agg[0], p.value)
                agg[1] = max(agg[1], p.value)
                agg[2] += p.value
                agg[3] += 1.0
            seen = newest.get((p.device_id, p.series))
            if seen is None or p.ts >= seen.ts:
                newest[(p.device_id, p.series)] = p
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN")
            try:
                conn.executemany("INSERT INTO points VALUES (?, ?, ?, ?, ?)", rows)
                conn.executemany(
                    _ROLLUP, [(*k, a[0], a[1], a[2], int(a[3])) for k, a in minutes.items()]
                )
                conn.executemany(
                    _LATEST,
                    [(p.device_id, p.series, p.site_id, p.ts, p.value) for p in newest.values()],
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def prune(self, now: float) -> int:
        """Drop raw points past the raw window and rollups past theirs; rows deleted."""
        with self._lock:
            raw = self._conn.execute(
                "DELETE FROM points WHERE ts < ?", (now - self.raw_retention_s,)
            ).rowcount
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
            oldest_raw = self._conn.execute(
                "SELECT min(ts) FROM points WHERE device_id = ? AND series = ?",
                (device_id, series),
            ).fetchone()[0]
            if oldest_raw is not None and start >= oldest_raw:
                rows = self._conn.execute(
                    "SELECT CAST((ts - ?) / ? AS INTEGER) AS b, min(value), max(value),"
                    " sum(value), count(*) FROM points"
                    " WHERE device_id = ? AND series = ? AND ts >= ? AND ts < ?"
                    " GROUP BY b ORDER BY b",
                    (start, bucket_s, device_id, series, start, end),
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
            rows = self._conn.execute(
                "SELECT series, ts, value FROM latest WHERE device_id = ? ORDER BY series",
                (device_id,),
            ).fetchall()
        return [Latest(str(s), float(t), float(v)) for s, t, v in rows]

    def count(self) -> int:
        """Raw points stored (tests and the benchmark)."""
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM points").fetchone()[0])

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._conn.close()
