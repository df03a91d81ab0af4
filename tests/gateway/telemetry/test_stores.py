"""The two telemetry stores behind one interface, and the sink that writes both."""

from __future__ import annotations

import dataclasses
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.telemetry.influx import InfluxOptions, InfluxWriter, _Lines, line
from gateway.telemetry.points import Point
from gateway.telemetry.sqlite_schema import SCHEMA_VERSION, hot_path
from gateway.telemetry.sqlite_store import _HAS_MESSAGE, DAY_S, SqliteTelemetryStore
from gateway.telemetry.sqlite_upkeep import PRUNE
from tests.support.victoria import VictoriaMetrics

NOW = time.time()  # VictoriaMetrics refuses points far from its own clock


def wait_for(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def ramp(device: str, series: str, start: float, n: int, step_s: float = 1.0) -> list[Point]:
    return [Point("s1", device, series, float(i), start + i * step_s) for i in range(n)]


def test_sqlite_store_buckets_latest_and_wal(tmp_path: Path) -> None:
    store = SqliteTelemetryStore(tmp_path / "telemetry.sqlite")
    t0 = 1_800_000_000.0  # on a minute boundary
    store.write(ramp("shed-1", "port1_temperature", t0, 120))  # 0..119 over 2 min
    store.write([Point("s1", "shed-1", "ambient_temperature", 18.5, t0)])
    store.write([Point("s1", "shed-1", "ambient_temperature", 17.0, t0 - 5)])  # late, older
    buckets = store.buckets("shed-1", "port1_temperature", t0, t0 + 120, 60)
    assert [(b.start, b.min, b.max, b.avg, b.count) for b in buckets] == [
        (t0, 0.0, 59.0, 29.5, 60),
        (t0 + 60, 60.0, 119.0, 89.5, 60),
    ]
    latest = {x.series: (x.ts, x.value) for x in store.latest("shed-1")}
    assert latest == {
        "ambient_temperature": (t0, 18.5),  # the late older point did not win
        "port1_temperature": (t0 + 119, 119.0),
    }
    assert store.latest("other") == []
    store.close()
    with sqlite3.connect(tmp_path / "telemetry.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_store_retention_keeps_minute_rollups(tmp_path: Path) -> None:
    store = SqliteTelemetryStore(tmp_path / "t.sqlite", raw_retention_s=DAY_S)
    t0 = 1_800_000_000.0
    store.write(ramp("d", "power", t0, 180))  # 3 minutes of one point per second
    store.write(ramp("d", "power", t0 + 2 * DAY_S, 10))
    assert store.prune(t0 + 2 * DAY_S) == 0  # not moved yet: a later prune takes them
    assert store.derive() == 190  # the gateway's clock moves every `derive_interval_s`
    deleted = store.prune(t0 + 2 * DAY_S)
    assert deleted == 180
    assert store.count() == 10
    # the old range is answered from the rollups, at minute resolution at least
    old = store.buckets("d", "power", t0, t0 + 180, 1)
    assert [(b.min, b.max, b.count) for b in old] == [(0, 59, 60), (60, 119, 60), (120, 179, 60)]
    store.prune(t0 + 200 * DAY_S)  # past the 90-day rollup window too
    assert store.buckets("d", "power", t0, t0 + 180, 60) == []


def test_sqlite_store_writes_each_message_once(tmp_path: Path) -> None:
    """A redelivered message (the gateway killed between its commit and its point write,
    or after both) is written if missing and skipped if present: no loss, no double."""
    store = SqliteTelemetryStore(tmp_path / "t.sqlite")
    t0 = 1_800_000_000.0
    a, b = ("s1", "shed-1", "msg-aaaaaaaa"), ("s1", "shed-1", "msg-bbbbbbbb")
    written = store.write_messages([(a, ramp("shed-1", "power", t0, 10))], now=t0)
    assert len(written) == 10
    # a comes again (already stored), b for the first time though the database had it
    again = store.write_messages(
        [(a, ramp("shed-1", "power", t0, 10)), (b, ramp("shed-1", "energy", t0, 5))],
        recheck=[a, b],
        now=t0,
    )
    assert [p.series for p in again] == ["energy"] * 5
    assert store.count() == 15
    assert store.stored(a)
    assert store.stored(b)
    # the same key from another device is another message
    other = ("s1", "shed-2", "msg-aaaaaaaa")
    assert (
        len(store.write_messages([(other, ramp("shed-2", "power", t0, 3))], recheck=[other])) == 3
    )
    # rollups count each stored point once
    [minute] = store.buckets("shed-1", "power", t0, t0 + 60, 60)
    assert minute.count == 10
    store.close()


@pytest.mark.parametrize("sizes", [[1], [99, 1], [100], [37, 63, 1], [250, 3, 150]])
def test_the_append_stores_every_point_and_key_across_its_statement_chunks(
    tmp_path: Path, sizes: list[int]
) -> None:
    """The append writes `ROWS_PER_INSERT` rows a statement and the rest in one more: every
    point lands once with its own value and time, and every message id once."""
    store = SqliteTelemetryStore(tmp_path / "t.sqlite")
    t0 = 1_800_000_000.0
    messages = [
        (("s1", f"d{m}", f"msg-{m:08d}"), ramp(f"d{m}", "power", t0 + m * 1000, n))
        for m, n in enumerate(sizes)
    ]
    assert len(store.write_messages(messages, now=t0)) == sum(sizes)
    assert store.derive() == sum(sizes)
    for (key, points), n in zip(messages, sizes, strict=True):
        assert store.stored(key)
        device = key[1]
        got = store.buckets(device, "power", points[0].ts, points[-1].ts + 1, 1)
        assert [(b.start, b.min, b.count) for b in got] == [(p.ts, p.value, 1) for p in points]
        assert len(got) == n
    assert store.count() == sum(sizes)
    store.close()


def test_a_redelivery_is_rechecked_by_its_primary_key_not_a_scan_of_the_week(
    tmp_path: Path,
) -> None:
    """The recheck reads the message-id table by its key: it holds a week of every node's
    message ids (millions), which a lookup by `msg_id` alone scanned for every batch."""
    store = SqliteTelemetryStore(tmp_path / "t.sqlite")
    store.close()
    with sqlite3.connect(tmp_path / "t.sqlite") as conn:
        plan = " ".join(
            str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {_HAS_MESSAGE}", ("s", "d", "m"))
        )
    conn.close()
    assert "PRIMARY KEY" in plan
    assert "SCAN" not in plan


def test_sqlite_store_rollups_include_late_points(tmp_path: Path) -> None:
    store = SqliteTelemetryStore(tmp_path / "t.sqlite", raw_retention_s=DAY_S)
    t0 = 1_800_000_000.0
    store.write(ramp("d", "power", t0, 60))
    assert store.derive() == 60
    store.write([Point("s1", "d", "power", 1000.0, t0 + 30)])  # late, into a rolled minute
    store.prune(t0 + 3 * DAY_S)  # derives first, then drops the raw rows
    [old] = store.buckets("d", "power", t0, t0 + 60, 60)
    assert (old.min, old.max, old.count) == (0.0, 1000.0, 61)
    assert {x.series: x.value for x in store.latest("d")} == {"power": 59.0}
    store.close()


def test_sqlite_store_upgrades_a_version_1_file(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    t0 = 1_800_000_000.0
    with sqlite3.connect(path) as conn:  # the first cut's layout, rollups already made
        conn.executescript(
            "CREATE TABLE points (site_id TEXT NOT NULL, device_id TEXT NOT NULL,"
            " series TEXT NOT NULL, ts REAL NOT NULL, value REAL NOT NULL);"
            "CREATE TABLE minutes (site_id TEXT NOT NULL, device_id TEXT NOT NULL,"
            " series TEXT NOT NULL, minute INTEGER NOT NULL, vmin REAL NOT NULL,"
            " vmax REAL NOT NULL, vsum REAL NOT NULL, n INTEGER NOT NULL,"
            " PRIMARY KEY (device_id, series, minute)) WITHOUT ROWID;"
        )
        conn.execute("INSERT INTO points VALUES ('s1', 'd', 'power', ?, 5.0)", (t0,))
        conn.execute(
            "INSERT INTO minutes VALUES ('s1', 'd', 'power', ?, 5, 5, 5, 1)", (int(t0 // 60),)
        )
    conn.close()
    store = SqliteTelemetryStore(path, raw_retention_s=DAY_S)
    store.write([Point("s1", "d", "power", 7.0, t0 + 1)])
    assert store.count() == 2
    store.prune(t0 + 3 * DAY_S)
    [minute] = store.buckets("d", "power", t0, t0 + 60, 60)
    assert (minute.min, minute.max, minute.count) == (5.0, 7.0, 2)  # the old row not twice
    store.close()


V4_SCHEMA = """
CREATE TABLE series (
    sid INTEGER PRIMARY KEY, site_id TEXT NOT NULL, device_id TEXT NOT NULL,
    series TEXT NOT NULL, UNIQUE (site_id, device_id, series));
CREATE INDEX series_by_device ON series (device_id, series);
CREATE TABLE points (
    id INTEGER PRIMARY KEY AUTOINCREMENT, sid INTEGER NOT NULL, value REAL NOT NULL,
    ts REAL NOT NULL);
CREATE INDEX points_by_series ON points (sid, ts);
CREATE TABLE minutes (
    site_id TEXT NOT NULL, device_id TEXT NOT NULL, series TEXT NOT NULL,
    minute INTEGER NOT NULL, vmin REAL NOT NULL, vmax REAL NOT NULL, vsum REAL NOT NULL,
    n INTEGER NOT NULL, PRIMARY KEY (device_id, series, minute)) WITHOUT ROWID;
CREATE TABLE latest (
    device_id TEXT NOT NULL, series TEXT NOT NULL, site_id TEXT NOT NULL, ts REAL NOT NULL,
    value REAL NOT NULL, PRIMARY KEY (device_id, series)) WITHOUT ROWID;
CREATE TABLE stored_messages (
    site_id TEXT NOT NULL, device_id TEXT NOT NULL, msg_id TEXT NOT NULL,
    stored_at REAL NOT NULL, PRIMARY KEY (site_id, device_id, msg_id)) WITHOUT ROWID;
CREATE INDEX stored_messages_by_time ON stored_messages (stored_at);
CREATE TABLE derived (name TEXT PRIMARY KEY, upto INTEGER NOT NULL) WITHOUT ROWID;
"""
"""Versions 3 and 4 (3 had an index on time alone too), as those gateways made them."""


@pytest.mark.parametrize("version", [3, 4])
def test_sqlite_store_upgrades_a_version_3_or_4_file_in_place_and_prunes_through_the_series_index(
    tmp_path: Path, version: int
) -> None:
    """Versions 3 and 4 become 5 in place (no copy: the rows keep their ids); the rows above
    the rollups' watermark stay, their latest values are brought up to date, and they are
    rolled up once when they leave the raw window; retention finds old rows through (sid,
    ts), never by scanning the table."""
    path = tmp_path / "v3.sqlite"
    t0 = 1_800_000_000.0
    with sqlite3.connect(path) as conn:
        conn.executescript(V4_SCHEMA)
        if version == 3:
            conn.execute("CREATE INDEX points_by_ts ON points (ts)")
        conn.execute(f"PRAGMA user_version = {version}")
        conn.execute("INSERT INTO series VALUES (7, 's1', 'd', 'power')")
        conn.executemany(
            "INSERT INTO points VALUES (?, 7, ?, ?)",
            [(40 + i, float(i), t0 + i * DAY_S) for i in range(3)],
        )
        conn.execute("INSERT INTO derived VALUES ('points', 41)")  # rows 40 and 41 counted
        conn.execute(
            "INSERT INTO minutes VALUES ('s1', 'd', 'power', ?, 0, 0, 0, 1)", (int(t0 // 60),)
        )
        minute1 = int((t0 + DAY_S) // 60)
        conn.execute("INSERT INTO minutes VALUES ('s1', 'd', 'power', ?, 1, 1, 1, 1)", (minute1,))
    conn.close()
    store = SqliteTelemetryStore(path, raw_retention_s=DAY_S)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "points_by_ts" not in names
        assert "points_by_series" in names
        assert [r[0] for r in conn.execute("SELECT id FROM points ORDER BY id")] == [40, 41, 42]
        assert conn.execute("SELECT value FROM latest").fetchall() == [(2.0,)]
        plan = " ".join(str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {PRUNE}", (0.0,)))
    conn.close()
    assert "points_by_series" in plan
    assert "SCAN points" not in plan
    store.write([Point("s1", "d", "energy", 1.0, t0 + 2 * DAY_S)])
    assert store.count() == 4
    assert store.prune(t0 + 3 * DAY_S) == 2  # the two older power points, nothing else
    assert store.count() == 2
    for i in range(3):  # each minute once: 40 and 41 from the rollups, 42 raw
        [minute] = store.buckets("d", "power", t0 + i * DAY_S, t0 + i * DAY_S + 60, 60)
        assert (minute.min, minute.count) == (float(i), 1)
    store.close()


def test_influx_line_protocol_escapes_and_ports() -> None:
    assert line(Point("s 1", "a,b", "port3_current", 1.5, 1.0)) == (
        r"telemetry,site=s\ 1,device=a\,b,port=3 current=1.5 1000"
    )
    assert (
        line(Point("s", "d", "battery", 90.0, 2.5)) == "telemetry,site=s,device=d battery=90.0 2500"
    )


def test_influx_body_is_the_lines_of_its_points_with_shared_timestamps() -> None:
    # The body writes a timestamp once per run of equal ones: every line must still carry
    # its own point's timestamp, whatever the order.
    stamps = [1.0, 1.0, 1.0, 2.5, 2.5, 1.0, 3.0004, 3.0004]
    points = [
        Point("s", f"d{i % 3}", f"port{1 + i % 2}_current", i * 0.5, ts)
        for i, ts in enumerate(stamps)
    ]
    body = _Lines()(points).decode()
    assert body == "".join(line(p) + "\n" for p in points)
    assert _Lines()(points[:1]) + _Lines()(points[1:]) == body.encode()  # batches join too


def fast_options(url: str, **kw: float) -> InfluxOptions:
    return InfluxOptions(
        url=url,
        org="guanjia",
        bucket="telemetry",
        token="t",
        batch_size=int(kw.get("batch_size", 500)),
        flush_interval_s=0.05,
        jitter_s=0.01,
        retry_interval_s=0.1,
        max_retry_delay_s=0.4,
        max_buffer=int(kw.get("max_buffer", 100_000)),
        timeout_s=2.0,
    )


@pytest.mark.timeout(90)
def test_influx_writer_delivers_to_victoria_metrics(victoria: VictoriaMetrics) -> None:
    writer = InfluxWriter(fast_options(victoria.url))
    writer.write(ramp("shed-1", "port2_temperature", NOW - 600, 300))
    writer.write([Point("s1", "smoke-1", "battery", 88.0, NOW - 10)])
    wait_for(lambda: writer.written == 301)
    rows = {(r["metric"]["__name__"], r["metric"].get("port")): r for r in victoria.export()}
    temp = rows[("telemetry_temperature", "2")]
    assert temp["metric"] == {
        "__name__": "telemetry_temperature",
        "site": "s1",
        "device": "shed-1",
        "port": "2",
    }
    assert temp["values"] == [float(i) for i in range(300)]
    assert rows[("telemetry_battery", None)]["values"] == [88.0]
    assert (writer.dropped, writer.buffered) == (0, 0)
    writer.close()


@pytest.mark.timeout(120)
def test_influx_writer_buffers_while_server_is_down_and_bounds_the_buffer(
    victoria: VictoriaMetrics,
) -> None:
    writer = InfluxWriter(fast_options(victoria.url, batch_size=200, max_buffer=1000))
    writer.write(ramp("d", "power", NOW - 900, 100))
    wait_for(lambda: writer.written == 100)
    victoria.stop()
    started = time.monotonic()
    writer.write(ramp("d", "power", NOW - 800, 1500, 0.5))  # 1,500 more while away: 500 dropped
    assert time.monotonic() - started < 0.5  # write() only queues (no network call)
    wait_for(lambda: writer.failures >= 2)
    assert writer.dropped == 500
    assert writer.buffered == 1000
    victoria.start()
    wait_for(lambda: writer.written == 1100, timeout=30)
    values = victoria.export('{__name__="telemetry_power"}')[0]["values"]
    # the oldest of the flood were dropped; the newest 1,000 arrived after the outage
    assert values == [float(i) for i in range(100)] + [float(i) for i in range(500, 1500)]
    writer.close()


@pytest.mark.timeout(60)
def test_influx_writer_queues_and_drops_while_a_send_hangs() -> None:
    """Ingest never waits for the time-series server: with a write stuck on a server that
    accepted the connection and never answers, `write` still only queues, and past the
    bound drops and counts the oldest. (Returning only after the stuck send failed would
    show as a failure counted, or the points written, by then.)"""
    with socket.socket() as silent:  # the kernel completes the handshake; nobody reads
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        options = fast_options(url, batch_size=100, max_buffer=300)
        writer = InfluxWriter(dataclasses.replace(options, timeout_s=5.0))
        writer.write(ramp("d", "power", NOW - 900, 100))  # a full batch: taken and sent
        wait_for(lambda: writer.buffered == 0)
        writer.write(ramp("d", "power", NOW - 800, 400))
        assert (writer.written, writer.failures) == (0, 0)  # the first send is still stuck
        assert (writer.buffered, writer.dropped) == (300, 100)
        writer.close(timeout_s=15.0)
    assert writer.failures >= 1
    assert writer.written == 0


def test_sqlite_store_upgrades_a_version_2_file_keeping_its_row_ids(tmp_path: Path) -> None:
    """Version 2 (a text series per point) to 3 (series ids): the rows keep their ids, so
    what was derived before is not counted again and what was not is counted once."""
    path = tmp_path / "v2.sqlite"
    t0 = 1_800_000_000.0
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE points (id INTEGER PRIMARY KEY AUTOINCREMENT, site_id TEXT NOT NULL,"
            " device_id TEXT NOT NULL, series TEXT NOT NULL, value REAL NOT NULL,"
            " ts REAL NOT NULL);"
            "CREATE INDEX points_by_series ON points (device_id, series, ts);"
            "CREATE INDEX points_by_ts ON points (ts);"
            "CREATE TABLE minutes (site_id TEXT NOT NULL, device_id TEXT NOT NULL,"
            " series TEXT NOT NULL, minute INTEGER NOT NULL, vmin REAL NOT NULL,"
            " vmax REAL NOT NULL, vsum REAL NOT NULL, n INTEGER NOT NULL,"
            " PRIMARY KEY (device_id, series, minute)) WITHOUT ROWID;"
            "CREATE TABLE derived (name TEXT PRIMARY KEY, upto INTEGER NOT NULL) WITHOUT ROWID;"
            "PRAGMA user_version = 2;"
        )
        # ids from 11: the rows before were pruned
        rows = [(11 + i, "s1", "d", "power", float(i), t0 + i) for i in range(4)]
        conn.executemany("INSERT INTO points VALUES (?, ?, ?, ?, ?, ?)", rows)
        # the first two rows were derived into the rollups before the upgrade
        conn.execute(
            "INSERT INTO minutes VALUES ('s1', 'd', 'power', ?, 0, 1, 1, 2)", (int(t0 // 60),)
        )
        conn.execute("INSERT INTO derived VALUES ('points', 12)")
    conn.close()
    store = SqliteTelemetryStore(path)
    store.write([Point("s1", "d", "power", 9.0, t0 + 5), Point("s1", "d", "energy", 1.0, t0 + 5)])
    assert store.count() == 6
    [minute] = store.buckets("d", "power", t0 - 3600, t0 + 60, 60)  # raw: each point once
    assert (minute.min, minute.max, minute.count) == (0.0, 9.0, 5)
    store.prune(t0 + 30 * DAY_S)  # the raw rows go; the rollups keep every row once
    [old] = store.buckets("d", "power", t0 - 60, t0 + 60, 60)
    assert (old.min, old.max, old.count) == (0.0, 9.0, 5)
    assert {x.series: x.value for x in store.latest("d")} == {"power": 9.0, "energy": 1.0}
    store.close()


def test_two_replicas_creating_the_file_at_once_both_start(tmp_path: Path) -> None:
    """Two gateways started together on one new file: the second read the version (0) before
    the first's upgrade committed, then waited for the write lock; under it the file is
    current, so it has nothing to upgrade (it used to copy the new `points` as an old one)."""
    from gateway.telemetry.sqlite_schema import upgrade

    path = tmp_path / "t.db"
    first = sqlite3.connect(path, isolation_level=None)
    second = sqlite3.connect(path, isolation_level=None)

    class ReadThenRaced:
        """`second`, whose first version read is overtaken by `first`'s whole upgrade."""

        raced = False

        def execute(self, sql: str) -> sqlite3.Cursor:
            cursor = second.execute(sql)
            if sql == "PRAGMA user_version" and not self.raced:
                self.raced = True
                stale = cursor.fetchall()
                upgrade(first)
                return second.execute(f"SELECT {stale[0][0]}")
            return cursor

    try:
        upgrade(ReadThenRaced())  # type: ignore[arg-type]
        assert second.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert {r[0] for r in second.execute("SELECT name FROM sqlite_master")} >= {
            "points",
            "series",
        }
        assert "points_old" not in {r[0] for r in second.execute("SELECT name FROM sqlite_master")}
    finally:
        first.close()
        second.close()


def test_a_chart_across_the_raw_window_reads_the_rollups_then_the_raw_points_each_once(
    tmp_path: Path,
) -> None:
    """Rows are counted into the rollups as they leave the raw window (not on the way in):
    a chart reaching back past the window joins the two, and a minute split by the cut-off
    (half rolled up, half still raw) is one bucket with every point once."""
    store = SqliteTelemetryStore(tmp_path / "t.sqlite", raw_retention_s=DAY_S)
    t0 = 1_800_000_000.0  # a whole minute
    store.write(ramp("d", "power", t0, 180))  # minutes 0, 1, 2: one point a second
    assert store.derive() == 180
    assert store.prune(t0 + 90 + DAY_S) == 90  # minute 0 and half of minute 1 leave
    assert store.count() == 90
    buckets = store.buckets("d", "power", t0, t0 + 180, 60)
    assert [(b.min, b.max, b.count) for b in buckets] == [
        (0, 59, 60),
        (60, 119, 60),
        (120, 179, 60),
    ]
    assert store.prune(t0 + 90 + DAY_S) == 0  # nothing left to roll, nothing counted twice
    assert [b.count for b in store.buckets("d", "power", t0, t0 + 180, 60)] == [60, 60, 60]
    store.close()


def appends_while_the_main_file_is_held(path: Path, append: Callable[[], object]) -> bool:
    """Whether `append` finishes within 3 s while another connection holds the main file's
    write lock, as a long move would (without the append file, or with a write for a known
    series, it waits for the lock: busy_timeout, 5 s, and fails)."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        done = threading.Event()

        def run() -> None:
            append()
            done.set()

        writer = threading.Thread(target=run)
        writer.start()
        finished = done.wait(3.0)
        writer.join()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    return finished


def test_the_ingest_appends_while_a_move_or_prune_holds_the_main_file(tmp_path: Path) -> None:
    """The ingest writes the append file alone: a move, a prune or a chart holding the main
    file's write lock (SQLite has one writer a file) does not hold up a batch of readings."""
    store = SqliteTelemetryStore(tmp_path / "t.sqlite")
    t0 = 1_800_000_000.0
    store.write_messages([(("s1", "d", "m-0"), ramp("d", "power", t0, 10))], now=t0)
    key = ("s1", "d", "m-1")
    assert appends_while_the_main_file_is_held(
        tmp_path / "t.sqlite",
        lambda: store.write_messages([(key, ramp("d", "power", t0 + 10, 10))], recheck=[key]),
    ), "the append waited for the main file's write lock"
    assert store.count() == 20
    assert store.derive() == 20
    assert store.stored(("s1", "d", "m-1"))
    store.close()


def test_a_new_writer_of_an_existing_file_appends_while_a_move_holds_the_main_file(
    tmp_path: Path,
) -> None:
    """A process that starts (a restarted gateway, a replica taking the lease) meets every
    series of the file again, its cache empty: it reads their ids, it does not write the
    main file for them, so its first batches do not wait for a move either."""
    first = SqliteTelemetryStore(tmp_path / "t.sqlite")
    t0 = 1_800_000_000.0
    first.write_messages([(("s1", "d", "m-0"), ramp("d", "power", t0, 10))], now=t0)
    first.close()
    store = SqliteTelemetryStore(tmp_path / "t.sqlite")
    assert appends_while_the_main_file_is_held(
        tmp_path / "t.sqlite",
        lambda: store.write_messages([(("s1", "d", "m-1"), ramp("d", "power", t0 + 10, 10))]),
    ), "a known series' id was written for, waiting for the lock"
    assert store.count() == 20
    store.close()


def test_rows_a_crash_left_behind_after_their_move_are_not_counted_twice(tmp_path: Path) -> None:
    """A move commits the main file, then deletes what it moved from the append file; rows
    still there after a crash between the two are below the main file's mark: forgotten,
    never moved again. And an append file lost or replaced never makes new rows look moved."""
    path = tmp_path / "t.sqlite"
    store = SqliteTelemetryStore(path)
    t0 = 1_800_000_000.0
    store.write_messages([(("s1", "d", "m-0"), ramp("d", "power", t0, 10))], now=t0)
    hot = sqlite3.connect(hot_path(path), isolation_level=None)
    appended = hot.execute("SELECT id, sid, value, ts FROM incoming").fetchall()
    assert store.derive() == 10
    hot.executemany("INSERT INTO incoming VALUES (?, ?, ?, ?)", appended)  # the crash's leftovers
    hot.close()
    assert store.count() == 10
    assert store.derive() == 0
    assert [b.count for b in store.buckets("d", "power", t0, t0 + 60, 60)] == [10]
    store.close()
    hot_path(path).unlink()  # lost: its ids would start again at 1, below the mark
    store = SqliteTelemetryStore(path)
    store.write_messages([(("s1", "d", "m-1"), ramp("d", "power", t0 + 10, 5))], now=t0)
    assert store.count() == 15
    assert store.derive() == 5
    assert [b.count for b in store.buckets("d", "power", t0, t0 + 60, 60)] == [15]
    store.close()
