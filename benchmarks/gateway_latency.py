"""Alert → ticket committed → pushed on the SSE stream: p50/p99 at fixed alert rates.

    python -m benchmarks.gateway_latency [--rate 200 --rate 2000] [--seconds 2]
                                         [--rounds 3] [--processes 1] [--database-url URL]

For each round and each `--rate` (default 200 and 2,000 alerts/s, interleaved round by
round), starts its own Mosquitto and a real `guanjia gateway run` (SQLite in a temp dir, or
PostgreSQL in a private schema dropped afterwards), logs in, opens `/api/stream`, then
publishes DetectionEvents at the rate for `--seconds` (each opens a new ticket). Latency is
publish time → the `opened` change of that alert's ticket arriving on the stream (matched
by the ticket's zone, so it holds with several ingest processes too, whose commits need
not follow publish order); this process does no garbage collection while it timestamps.
The limit measured in the same run is the bare broker hop:
publish → a plain paho subscriber receiving the same messages. Prints each run and the
medians over the rounds of p50/p99 of both, their ratio, the gateway's CPU µs per alert
(its whole process tree while the alerts flow) and the load average. `--processes N` runs
the gateway with N ingest workers (`mqtt.ingest_processes`): an alert then commits in a
worker and reaches the stream through the gateway process's feed wake-up. The machine is
shared, so the tail is noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import create_engine, text

import contract as c
from benchmarks.ingest.processes import cpu_seconds
from benchmarks.support.machine import loadavg
from benchmarks.support.result import emit, make
from benchmarks.support.rounds import Rounds
from benchmarks.support.stats import percentile
from gateway.auth import Role, hash_password
from gateway.store import Store, database_url, migrate
from tests.support.broker import MosquittoBroker
from tests.support.gateway_process import start_gateway
from tests.support.messages import event
from tests.support.postgres import isolated_schema
from tests.support.seed import seed_site

SITE = "bench"
PASSWORD = "benchmark password"


def read_stream(
    url: str, token: str, n: int, arrivals: list[tuple[float, int]], ready: threading.Event
) -> None:
    """Record (arrival time, ticket id) of each `opened` ticket change until `n` arrived."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream("GET", f"{url}/api/stream", headers=headers, timeout=None) as response:
        event_name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                event_name = line[7:]
                if event_name == "hello":
                    ready.set()
            elif line.startswith("data: ") and event_name == "ticket":
                now = time.perf_counter()
                change = json.loads(line[6:])
                if change["action"] != "opened":
                    continue
                arrivals.append((now, int(change["ticket_id"])))
                if len(arrivals) == n:
                    return


@contextlib.contextmanager
def no_collection() -> Iterator[None]:
    """No garbage collection in this process meanwhile: a full one stops the stream reader's
    thread for ~100 ms, which would be counted as the gateway's latency."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def publish_at_rate(broker: MosquittoBroker, messages: list[bytes], rate: float) -> list[float]:
    """Publish `messages` at `rate` per second; returns each send time."""
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub")
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    time.sleep(0.5)
    sent: list[float] = []
    topic = str(c.event_topic(SITE, "cam-a"))
    start = time.perf_counter()
    for i, payload in enumerate(messages):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent.append(time.perf_counter())
        pub.publish(topic, payload, qos=1)
    time.sleep(1.0)
    pub.loop_stop()
    return sent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rate", type=float, action="append", help="alerts/s (repeat; default 200 and 2000)"
    )
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=1, help="mqtt.ingest_processes")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument("--quick", action="store_true", help="The report size (the default).")
    parser.add_argument("--smoke", action="store_true", help="Smallest run (not a figure).")
    args = parser.parse_args(argv)
    rates: list[float] = args.rate or [200.0, 2000.0]
    if args.smoke:
        rates, args.seconds, args.rounds = [50.0], 1.0, 1
    load0 = loadavg()
    rounds = Rounds()
    for number in range(1, args.rounds + 1):
        for rate in rates:  # interleaved: each rate once per round
            n = int(rate * args.seconds)
            before = loadavg()
            with tempfile.TemporaryDirectory() as tmp_name:
                tmp = Path(tmp_name)
                if args.database_url is None:
                    db = f"sqlite:///{tmp / 'gw.db'}"
                    values = run(tmp, db, n, rate, args.processes)
                else:
                    for db in isolated_schema(args.database_url):
                        values = run(tmp, db, n, rate, args.processes)
            rounds.add(f"{rate:g}", values)
            print(
                f"round {number}, {rate:>6g} alerts/s: gateway p50 {values['p50']:8.2f} ms "
                f"p99 {values['p99']:8.2f} ms | hop p50 {values['hop_p50']:6.2f} ms p99 "
                f"{values['hop_p99']:6.2f} ms | {values['cpu_us']:5.0f} µs CPU/alert | "
                f"{values['arrived']:.0f}/{n} on the stream | load {before[0]:.2f} → "
                f"{loadavg()[0]:.2f}",
                flush=True,
            )
    for rate in rates:
        key = f"{rate:g}"
        n = int(rate * args.seconds)
        cpu = rounds.median(key, "cpu_us")
        print(f"{key} alerts/s, median of {args.rounds} rounds:")
        for q in (50, 99):
            figure, hop = rounds.median(key, f"p{q}"), rounds.median(key, f"hop_p{q}")
            print(
                f"  p{q}: alert → ticket → stream {figure:8.2f} ms, broker hop (limit) "
                f"{hop:6.2f} ms, ratio hop/gateway {hop / figure:.3f}"
            )
            emit(
                make(
                    benchmark="gateway_latency",
                    name=f"alert → ticket → SSE p{q} at {key} alerts/s",
                    figure=figure,
                    unit="ms",
                    better="lower",
                    limit=hop,
                    limit_name="the same alerts' broker hop to a bare paho subscriber",
                    rounds=args.rounds,
                    size=f"{n} alerts, {args.processes} ingest process(es)",
                    loadavg_start=load0,
                    cpu_us_per_item=cpu,
                )
            )
        print(f"  gateway CPU {cpu:.0f} µs per alert (its process tree)")
    print(f"gateway processes: {args.processes}; load at start {load0}, at the end {loadavg()}")


def run(tmp: Path, db: str, n: int, rate: float, processes: int = 1) -> dict[str, float]:
    """Send `n` alerts at `rate`; returns the latency percentiles of both paths (ms), the
    gateway's CPU µs per alert and how many tickets reached the stream."""
    broker = MosquittoBroker(tmp / "broker")
    broker.start()
    migrate(db)
    store = Store(db)
    seed_site(store, SITE, ("cam-a",))
    store.users.create_user("bench", hash_password(PASSWORD), Role.ADMIN, ["*"])
    store.close()
    workers: dict[str, Any] = {"mqtt__ingest_processes": processes}
    gateway = start_gateway(
        tmp, db, broker, "gw-lat", sla_tick_s=5.0, **(workers if processes > 1 else {})
    )
    try:
        gateway.wait_ready(120)  # start-up on a loaded box is not what is measured
        log = broker.log_path
        deadline = time.monotonic() + 30
        while processes > 1 and time.monotonic() < deadline:
            if all(f"as gw-lat-w{i}" in log.read_text() for i in range(1, processes + 1)):
                break
            time.sleep(0.1)
        token = httpx.post(
            f"{gateway.url}/api/login", json={"username": "bench", "password": PASSWORD}
        ).json()["access_token"]
        arrivals: list[tuple[float, int]] = []
        bare_arrivals: list[float] = []
        ready = threading.Event()

        reader = threading.Thread(
            target=read_stream, args=(gateway.url, token, n, arrivals, ready), daemon=True
        )
        reader.start()
        ready.wait(10)

        bare = paho.Client(CallbackAPIVersion.VERSION2, client_id="bare-sub")
        bare.on_message = lambda _c, _u, _m: bare_arrivals.append(time.perf_counter())
        bare.connect(broker.host, broker.port)
        bare.subscribe(str(c.event_topic(SITE, "cam-a")), qos=1)
        bare.loop_start()
        messages = [
            c.encode(event(SITE, "cam-a", f"ev-lat-{i:06d}", zone_id=f"z{i}")) for i in range(n)
        ]
        cpu0 = cpu_seconds(gateway.process.pid)
        with no_collection():
            sent = publish_at_rate(broker, messages, rate)
            reader.join(timeout=120)
        cpu = cpu_seconds(gateway.process.pid) - cpu0
        bare.loop_stop()
    finally:
        gateway.stop()
        broker.stop()
    zones = ticket_zones(db)
    gw = [(at - sent[zones[ticket]]) * 1000 for at, ticket in arrivals if ticket in zones]
    hop = [(a - s) * 1000 for s, a in zip(sent, bare_arrivals, strict=False)]
    if not gw:
        raise SystemExit(f"no ticket reached the stream at {rate:g}/s")
    return {
        "p50": percentile(gw, 50),
        "p99": percentile(gw, 99),
        "hop_p50": percentile(hop, 50),
        "hop_p99": percentile(hop, 99),
        "cpu_us": cpu / n * 1e6,
        "arrived": len(gw),
    }


def ticket_zones(db: str) -> dict[int, int]:
    """Ticket id → the index of the alert that opened it (its zone is ``z<index>``)."""
    engine = create_engine(database_url(db))
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, zone_id FROM tickets")).all()
    finally:
        engine.dispose()
    return {int(row[0]): int(str(row[1])[1:]) for row in rows if str(row[1]).startswith("z")}


if __name__ == "__main__":
    main()
