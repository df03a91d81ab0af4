"""Alert → ticket committed → pushed on the SSE stream: p50/p99 at a fixed alert rate.

    python -m benchmarks.gateway_latency [--rate 200] [--seconds 10] [--processes 1]
                                         [--database-url URL]

Starts its own Mosquitto and a real `guanjia gateway run` (SQLite in a temp dir, or
PostgreSQL in a private schema dropped afterwards), logs in, opens
`/api/stream`, then publishes DetectionEvents at `--rate` per second (each opens a new
ticket). Latency is publish time → the `opened` change arriving on the stream (single
gateway: changes arrive in publish order). The limit measured in the same run is the bare
broker hop: publish → a plain subscriber receiving the same messages. Prints p50/p99 of
both and their ratio, with the load average. `--processes N` runs the gateway with N ingest
workers (`mqtt.ingest_processes`), as the ingest benchmark does: an alert then commits in a
worker and reaches the stream through the gateway process's feed wake-up. The machine is
shared, so the tail is noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

import contract as c
from benchmarks.support.machine import loadavg
from benchmarks.support.result import emit, make
from benchmarks.support.stats import percentile
from gateway.auth import Role, hash_password
from gateway.store import Store, migrate
from tests.support.broker import MosquittoBroker
from tests.support.gateway_process import start_gateway
from tests.support.messages import event
from tests.support.postgres import isolated_schema
from tests.support.seed import seed_site

SITE = "bench"
PASSWORD = "benchmark password"


def read_stream(
    url: str, token: str, n: int, arrivals: list[float], ready: threading.Event
) -> None:
    """Record the arrival time of each `opened` ticket change until `n` arrived."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream("GET", f"{url}/api/stream", headers=headers, timeout=None) as response:
        event_name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                event_name = line[7:]
                if event_name == "hello":
                    ready.set()
            elif (
                line.startswith("data: ")
                and event_name == "ticket"
                and json.loads(line[6:])["action"] == "opened"
            ):
                arrivals.append(time.perf_counter())
                if len(arrivals) == n:
                    return


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
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=1, help="mqtt.ingest_processes")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument("--quick", action="store_true", help="The report size (the default).")
    parser.add_argument("--smoke", action="store_true", help="Smallest run (not a figure).")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rate, args.seconds = 50.0, 1.0
    n = int(args.rate * args.seconds)
    before = os.getloadavg()
    load0 = loadavg()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.database_url is None:
            db = f"sqlite:///{tmp / 'gw.db'}"
            sent, arrivals, bare_arrivals = run(tmp, db, n, args.rate, args.processes)
        else:
            for db in isolated_schema(args.database_url):
                sent, arrivals, bare_arrivals = run(tmp, db, n, args.rate, args.processes)
    gw, hop = report(n, args.rate, sent, arrivals, bare_arrivals)
    for q in (50, 99):
        emit(
            make(
                benchmark="gateway_latency",
                name=f"alert → ticket → SSE p{q} at {args.rate:g} alerts/s",
                figure=percentile(gw, q),
                unit="ms",
                better="lower",
                limit=percentile(hop, q),
                limit_name="the same alerts' broker hop to a bare paho subscriber",
                rounds=1,
                size=f"{n} alerts, {args.processes} ingest process(es)",
                loadavg_start=load0,
            )
        )
    print(
        f"gateway processes: {args.processes}; load before {before[0]:.2f}, after "
        f"{os.getloadavg()[0]:.2f}"
    )


def run(
    tmp: Path, db: str, n: int, rate: float, processes: int = 1
) -> tuple[list[float], list[float], list[float]]:
    """Send `n` alerts at `rate`; returns send times, stream arrivals, bare arrivals."""
    broker = MosquittoBroker(tmp / "broker")
    broker.start()
    migrate(db)
    store = Store(db)
    seed_site(store, SITE, ("cam-a",))
    store.create_user("bench", hash_password(PASSWORD), Role.ADMIN, ["*"])
    store.close()
    workers: dict[str, Any] = {"mqtt__ingest_processes": processes}
    gateway = start_gateway(
        tmp, db, broker, "gw-lat", sla_tick_s=5.0, **(workers if processes > 1 else {})
    )
    try:
        gateway.wait_ready()
        log = broker.log_path
        deadline = time.monotonic() + 30
        while processes > 1 and time.monotonic() < deadline:
            if all(f"as gw-lat-w{i}" in log.read_text() for i in range(1, processes + 1)):
                break
            time.sleep(0.1)
        token = httpx.post(
            f"{gateway.url}/api/login", json={"username": "bench", "password": PASSWORD}
        ).json()["access_token"]
        arrivals: list[float] = []
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
        sent = publish_at_rate(broker, messages, rate)
        reader.join(timeout=120)
        bare.loop_stop()
    finally:
        gateway.stop()
        broker.stop()
    return sent, arrivals, bare_arrivals


def report(
    n: int, rate: float, sent: list[float], arrivals: list[float], bare_arrivals: list[float]
) -> tuple[list[float], list[float]]:
    """Print p50/p99 of both paths and their ratio."""
    if len(arrivals) != n:
        raise SystemExit(f"only {len(arrivals)} of {n} tickets reached the stream")
    gw = [(a - s) * 1000 for s, a in zip(sent, arrivals, strict=True)]
    hop = [(a - s) * 1000 for s, a in zip(sent, bare_arrivals, strict=False)]
    print(f"alerts: {n} at {rate:g}/s")
    for name, values in (("broker hop (limit):     ", hop), ("alert → ticket → stream:", gw)):
        p50, p99 = percentile(values, 50), percentile(values, 99)
        print(f"{name} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms")
    print(f"ratio p50 gateway / hop: {percentile(gw, 50) / percentile(hop, 50):.1f}")
    print(f"mean {statistics.fmean(gw):.2f} ms")
    return gw, hop


if __name__ == "__main__":
    main()
