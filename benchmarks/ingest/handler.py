"""The ingest handler alone (no MQTT): `IngestHandler.handle_batch` ÷ a bare decode-and-insert.

    python -m benchmarks.gateway_ingest --handler-only [--events 10000] [--rounds 3]
                                        [--batch 100] [--database-url URL]

The workload of `benchmarks.gateway_ingest` (200 cameras × 3 zones, start/updates/end),
prepared as (topic, payload) and fed in batches straight into the gateway's handler on a
fresh database. The limit, measured in the same run and interleaved with it, is the least
any handler must do with the same batches: msgspec-decode every payload and write one row per
message in one transaction per batch with the plain driver (sqlite3 ``executemany``, or
psycopg ``COPY`` on PostgreSQL). Reported per round and as medians: events/s, CPU µs per
message of this process (the database server's CPU is not in it on PostgreSQL: the rate
shows its share), and the ratio handler ÷ limit of the rates.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import msgspec
import psycopg

from benchmarks.ingest.workload import Messages, prepare_db, workload
from benchmarks.support.machine import loadavg
from benchmarks.support.result import emit, make
from benchmarks.support.stats import percentile
from gateway.config import GatewaySettings
from gateway.heap import settled
from gateway.ingest import IngestHandler, Outcome
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store
from tests.support.postgres import isolated_schema

_LIMIT_TABLE = (
    "CREATE TABLE bare_rows (msg_id TEXT PRIMARY KEY, site_id TEXT, device_id TEXT, "
    "event_id TEXT, ts DOUBLE PRECISION, body TEXT)"
)


@dataclass(frozen=True)
class Run:
    """One consumer's pass over a round's messages."""

    n: int
    wall_s: float
    cpu_s: float

    @property
    def eps(self) -> float:
        return self.n / self.wall_s

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.n * 1e6


def _timed(n: int, work: Callable[[], None]) -> Run:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return Run(n, time.perf_counter() - wall, time.process_time() - cpu)


def _batches(messages: Messages, size: int) -> Iterator[Messages]:
    for start in range(0, len(messages), size):
        yield messages[start : start + size]


def _rows(batch: Messages) -> list[tuple[str, str, str, str, float, str]]:
    rows = []
    for _topic, payload in batch:
        body = msgspec.json.decode(payload)
        rows.append(
            (
                body["msg_id"],
                body["site_id"],
                body["device_id"],
                body["event_id"],
                body["ts"],
                msgspec.json.encode(body["boxes"]).decode(),
            )
        )
    return rows


def bare_limit(messages: Messages, batch: int, db_url: str) -> Run:
    """Decode and write one row per message, one transaction per batch, plain driver."""
    if db_url.startswith("sqlite"):
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(_LIMIT_TABLE)

        def work() -> None:
            for chunk in _batches(messages, batch):
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("INSERT INTO bare_rows VALUES (?, ?, ?, ?, ?, ?)", _rows(chunk))
                conn.execute("COMMIT")

        run = _timed(len(messages), work)
        conn.close()
        return run
    with psycopg.connect(db_url) as pg:
        pg.execute(_LIMIT_TABLE)
        pg.commit()

        def work_pg() -> None:
            for chunk in _batches(messages, batch):
                with pg.cursor() as cur, cur.copy("COPY bare_rows FROM STDIN") as copy:
                    for row in _rows(chunk):
                        copy.write_row(row)
                pg.commit()

        return _timed(len(messages), work_pg)


def handler_run(messages: Messages, batch: int, db_url: str) -> Run:
    """The gateway's handler, as the gateway builds it, on a freshly seeded database."""
    prepare_db(db_url)
    cooldown_s = GatewaySettings.model_fields["cooldown_s"].default
    store = Store(db_url)
    handler = IngestHandler(store, dict(DEFAULT_POLICIES), cooldown_s)
    now = time.time()
    accepted = 0

    def work() -> None:
        nonlocal accepted
        for chunk in _batches(messages, batch):
            results = handler.handle_batch(chunk, now)
            accepted += sum(r.outcome is Outcome.ACCEPTED for r in results)

    with settled():  # as the gateway's processes do once started (`gateway.heap`)
        run = _timed(len(messages), work)
    store.close()
    if accepted != len(messages):
        raise SystemExit(f"error: handler accepted {accepted} of {len(messages)} messages")
    return run


@contextmanager
def _database(url: str | None, path: Path) -> Iterator[str]:
    if url is None:
        yield f"sqlite:///{path}"
        return
    yield from isolated_schema(url)


def run(args: argparse.Namespace) -> None:
    """Interleaved rounds of the limit and the handler; prints and emits the medians."""
    load0 = loadavg()
    database = "PostgreSQL" if args.database_url else "SQLite"
    print(f"handler only, {database}: {args.events} events per round, batches of {args.batch}")
    limits: list[Run] = []
    handlers: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for r in range(args.rounds):
            messages = workload(args.events, f"h{r}", r)
            with _database(args.database_url, tmp / f"bare{r}.db") as url:
                bare = bare_limit(messages, args.batch, url)
            with _database(args.database_url, tmp / f"gw{r}.db") as url:
                gw = handler_run(messages, args.batch, url)
            limits.append(bare)
            handlers.append(gw)
            print(
                f"round {r + 1}: limit {bare.eps:8,.0f}/s {bare.cpu_us:5.1f} µs CPU/msg | "
                f"handler {gw.eps:7,.0f}/s {gw.cpu_us:5.1f} µs CPU/msg | "
                f"ratio {gw.eps / bare.eps:.3f} | load {' '.join(f'{x:.2f}' for x in loadavg())}"
            )
    ratio = percentile([g.eps / b.eps for b, g in zip(limits, handlers, strict=True)], 50)
    gw_cpu = percentile([g.cpu_us for g in handlers], 50)
    bare_cpu = percentile([b.cpu_us for b in limits], 50)
    print(
        f"handler {percentile([g.eps for g in handlers], 50):,.0f}/s, {gw_cpu:.1f} µs CPU/msg; "
        f"limit {percentile([b.eps for b in limits], 50):,.0f}/s, {bare_cpu:.1f} µs CPU/msg; "
        f"ratio {ratio:.3f} (median of per-round ratios)"
    )
    emit(
        make(
            benchmark="gateway_ingest",
            name=f"handler only, events/s, {database}, batches of {args.batch}",
            figure=percentile([g.eps for g in handlers], 50),
            unit="events/s",
            limit=percentile([b.eps for b in limits], 50),
            limit_name="msgspec decode + one plain-driver row per message, one commit per batch",
            cpu_us_per_item=gw_cpu,
            limit_cpu_us_per_item=bare_cpu,
            rounds=len(handlers),
            size=f"{args.events} events, 200 cameras x 3 zones, start/updates/end",
            loadavg_start=load0,
            notes=f"median of per-round ratios {ratio:.3f}",
        )
    )
