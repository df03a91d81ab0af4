"""Events/s the gateway commits ÷ a bare aiomqtt subscriber draining the same broker.

    python -m benchmarks.gateway_ingest [--events 10000] [--rounds 3] [--processes 2]
                                        [--database-url URL] [--live-rate 3000]
    python -m benchmarks.gateway_ingest --handler-only [--batch 100] (`benchmarks.ingest.handler`)

Starts its own Mosquitto. The workload is realistic in its keys: 200 cameras with 3 zones
each (600 (device, zone) ticket keys), tracks of one start, 0–3 updates and one end, laid
out in time so that a key sees its first ticket opened, events merged into an open ticket,
and tickets auto-resolved and then reopened within the cool-down. Each round, interleaved:

1. the limit: the same messages parked in a persistent session, then drained by a bare
   aiomqtt client (QoS 1) that only counts them;
2. the gateway: the same messages parked in the gateway's persistent sessions (its shared
   group: the gateway process and `--processes - 1` ingest workers), then a real
   `guanjia gateway run` started on them. Committed is measured from outside, by the
   end-to-end Acks the gateway publishes after each commit (every msg_id must come back).

Rates exclude the first delivery (the bare client's first message, the gateway's first
committed batch), so connecting and booting are not timed. CPU µs per message is each
consumer's CPU time (the gateway's process tree) over the same span, divided by the
messages in it; the gateway process's own share is printed beside it (with ingest workers
it should be near idle: they take the events). After the rounds, a live run publishes the
workload at `--live-rate` to a running gateway and reports what it committed per second and
how far behind it ended.

Prints every round (with the load average: the machine may be shared), then the median
rates, the ratio gateway ÷ bare, and the limits the issue sets (≥ 0.6 and ≥ 5,100/s on
SQLite, ≥ 0.4 on PostgreSQL).

Its parts live in `benchmarks.ingest`: the workload (`workload`), the two drains
(`drains`), the live run (`live`), process CPU from /proc (`processes`) and the handler-only
run (`handler`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import tempfile
from collections.abc import Iterable
from pathlib import Path

from benchmarks.ingest import handler as ingest_handler
from benchmarks.ingest.drains import Drain, bare, gateway
from benchmarks.ingest.live import live
from benchmarks.ingest.workload import workload
from benchmarks.support.machine import loadavg
from benchmarks.support.result import emit, make
from benchmarks.support.stats import percentile
from tests.support.broker import MosquittoBroker
from tests.support.postgres import isolated_schema

SQLITE_LIMITS = {"ratio": 0.6, "eps": 5100.0}
POSTGRES_LIMITS = {"ratio": 0.4, "eps": 0.0}


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{platform.node()}: {os.cpu_count()} cores, {model}, Python {platform.python_version()}"


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _parent(drain: Drain) -> str:
    """The gateway process's own share, when it has ingest workers below it."""
    parent = drain.parent_cpu_us
    return "" if parent is None or parent == drain.cpu_us else f" ({parent:.0f} in the parent)"


def _median(values: Iterable[float]) -> float:
    return percentile(list(values), 50)


async def main_async(args: argparse.Namespace) -> None:
    load0 = loadavg()
    postgres = args.database_url is not None
    limits = POSTGRES_LIMITS if postgres else SQLITE_LIMITS
    print(f"machine: {machine()}")
    print(f"date:    {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"database: {'PostgreSQL' if postgres else 'SQLite'}; gateway processes: "
        f"{args.processes}; events: {args.events} per round, 200 cameras × 3 zones"
    )
    bares: list[Drain] = []
    gws: list[Drain] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = MosquittoBroker(tmp / "broker")
        broker.start()
        try:
            for r in range(args.rounds):
                messages = workload(args.events, f"r{r}", seed=r)
                before = load()
                b = await bare(broker, messages, f"r{r}")
                for db_url in databases(args.database_url, tmp / f"r{r}.db"):
                    g = await gateway(broker, messages, db_url, tmp, f"r{r}", args.processes)
                bares.append(b)
                gws.append(g)
                print(
                    f"round {r + 1}: bare {b.eps:8,.0f}/s {b.cpu_us:5.0f} µs CPU/msg | gateway "
                    f"{g.eps:7,.0f}/s {g.cpu_us:5.0f} µs CPU/msg{_parent(g)} | "
                    f"ratio {g.eps / b.eps:.3f} | {before} → {load()}"
                )
            live_run = None
            if args.live_rate > 0:
                messages = workload(args.events, "live", seed=99)
                for db_url in databases(args.database_url, tmp / "live.db"):
                    live_run = await live(
                        broker, messages, db_url, tmp, args.live_rate, args.processes
                    )
        finally:
            broker.stop()
    bare_eps = _median(b.eps for b in bares)
    gw_eps = _median(g.eps for g in gws)
    ratio = _median(g.eps / b.eps for b, g in zip(bares, gws, strict=True))
    print(
        f"bare aiomqtt subscriber (the limit): {bare_eps:8,.0f} events/s, "
        f"{_median(b.cpu_us for b in bares):4.0f} µs CPU/msg (median of {len(bares)})"
    )
    print(
        f"gateway, committed and acked:       {gw_eps:8,.0f} events/s, "
        f"{_median(g.cpu_us for g in gws):4.0f} µs CPU/msg (median of {len(gws)})"
    )
    print(
        f"ratio gateway / bare: {ratio:.3f} (median of per-round ratios; limit ≥ "
        f"{limits['ratio']}) {'MET' if ratio >= limits['ratio'] else 'MISSED'}"
    )
    if limits["eps"]:
        met = "MET" if gw_eps >= limits["eps"] else "MISSED"
        print(f"gateway events/s: {gw_eps:,.0f} (limit ≥ {limits['eps']:,.0f}) {met}")
    database = "PostgreSQL" if postgres else "SQLite"
    emit(
        make(
            benchmark="gateway_ingest",
            name=f"events committed and acked/s, {database}, {args.processes} ingest processes",
            figure=gw_eps,
            unit="events/s",
            limit=bare_eps,
            limit_name="bare aiomqtt QoS 1 subscriber draining the same parked backlog",
            target=f"ratio >= {limits['ratio']}"
            + (f", >= {limits['eps']:,.0f} events/s" if limits["eps"] else ""),
            cpu_us_per_item=_median(g.cpu_us for g in gws),
            limit_cpu_us_per_item=_median(b.cpu_us for b in bares),
            rounds=len(gws),
            size=f"{args.events} events, 200 cameras x 3 zones, start/updates/end",
            loadavg_start=load0,
            notes=f"median of per-round ratios {ratio:.3f}",
        )
    )
    if live_run is not None:
        print(
            f"live: published at {live_run.rate:,.0f}/s → committed {live_run.eps:,.0f}/s, "
            f"{live_run.cpu_us:.0f} µs CPU/msg, last ack {live_run.lag_s * 1000:.0f} ms after "
            f"the last publish; {load()}"
        )


def databases(url: str | None, sqlite_path: Path) -> Iterable[str]:
    """The round's database: a fresh SQLite file, or a private PostgreSQL schema (dropped
    afterwards)."""
    if url is None:
        return [f"sqlite:///{sqlite_path}"]
    return isolated_schema(url)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2, help="mqtt.ingest_processes")
    parser.add_argument("--live-rate", type=float, default=3000.0, help="0: no live run")
    parser.add_argument(
        "--database-url",
        default=None,
        help="default: SQLite in a temp dir; PostgreSQL runs in a private schema",
    )
    parser.add_argument("--quick", action="store_true", help="The report size (the default).")
    parser.add_argument("--smoke", action="store_true", help="Smallest run (not a figure).")
    parser.add_argument(
        "--handler-only", action="store_true", help="No MQTT: `benchmarks.ingest.handler`."
    )
    parser.add_argument("--batch", type=int, default=100, help="--handler-only batch size")
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.rounds, args.live_rate = 300, 1, 0.0
    if args.handler_only:
        ingest_handler.run(args)
        return
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
