"""Gateway memory with many registered devices heartbeating, beside a bare process doing the same.

    python -m benchmarks.gateway_rss [--devices 10000] [--interval 30] [--seconds 60] [--quick]

Registers `--devices` devices (SQLite) and, in interleaved rounds, runs two processes on the
same database and the same heartbeat stream (one per device every `--interval` seconds,
spread evenly, for `--seconds`), sampling each one's VmRSS from /proc:

1. a real `guanjia gateway run`;
2. the reference, `benchmarks.rss_reference`: a bare Python process holding the same device
   rows in a dict and one MQTT connection, recording each heartbeat's last-seen time — the
   memory any process needs to hold this registry and stream, measured in the same run.

Prints both peaks, the ratio reference ÷ gateway (1.0 = the gateway costs no more than the
bare minimum), the gateway's peak against its 300 MB budget, ThingsBoard's published ~6.5 GB
per 100k devices scaled to the same count, CPU µs per heartbeat of each process, and whether
each kept up (heartbeats applied ÷ sent).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import create_engine, insert

import contract as c
from benchmarks.support.machine import loadavg, process_cpu_s
from benchmarks.support.result import BenchResult, emit, make
from benchmarks.support.rounds import interleave
from gateway.store import database_url, migrate
from gateway.store.schema import devices
from tests.support.broker import MosquittoBroker
from tests.support.gateway_process import start_gateway

SITE = "bench"
BUDGET_MB = 300.0
THINGSBOARD_MB_PER_DEVICE = 6.5 * 1024 / 100_000


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(found.group(1)) / 1024 if found else 0.0


def register(db: str, n: int) -> None:
    """Insert `n` devices in one statement (the registry's size is what is measured)."""
    engine = create_engine(database_url(db))
    with engine.begin() as conn:
        conn.execute(
            insert(devices),
            [
                {
                    "device_id": f"dev-{i:06d}",
                    "site_id": SITE,
                    "kind": "smoke",
                    "online": False,
                    "created_at": time.time(),
                }
                for i in range(n)
            ],
        )
    engine.dispose()


def heartbeats(
    broker: MosquittoBroker, pid: int, devices_n: int, interval: float, seconds: float
) -> dict[str, float]:
    """Publish the heartbeat stream for `seconds`; the process's peak RSS and CPU used."""
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="fleet")
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    rate = devices_n / interval
    cpu0 = process_cpu_s(pid)
    start = time.perf_counter()
    sent = 0
    peak = rss_mb(pid)
    next_sample = start
    while time.perf_counter() - start < seconds:
        delay = start + sent / rate - time.perf_counter()
        if delay > 0:
            time.sleep(min(delay, 0.05))
            continue
        device = f"dev-{sent % devices_n:06d}"
        beat = c.Heartbeat(
            ts=time.time(),
            site_id=SITE,
            device_id=device,
            interval_s=interval,
            uptime_s=10.0,
            software_version="0.1.0",
        )
        pub.publish(str(c.heartbeat_topic(SITE, device)), c.encode(beat), qos=0)
        sent += 1
        if time.perf_counter() >= next_sample:
            peak = max(peak, rss_mb(pid))
            next_sample += 0.5
    time.sleep(min(2.0, seconds))  # let the last ones land
    peak = max(peak, rss_mb(pid))
    cpu = process_cpu_s(pid) - cpu0
    pub.loop_stop()
    pub.disconnect()
    return {"peak_mb": peak, "sent": float(sent), "cpu_us": cpu / max(sent, 1) * 1e6}


def gateway_trial(
    tmp: Path, db: str, broker: MosquittoBroker, args: argparse.Namespace, number: int
) -> dict[str, float]:
    gateway = start_gateway(tmp, db, broker, f"gw-rss-{number}", sla_tick_s=5.0)
    try:
        gateway.wait_ready()
        idle = rss_mb(gateway.process.pid)
        out = heartbeats(broker, gateway.process.pid, args.devices, args.interval, args.seconds)
        metrics = gateway.metrics()
    finally:
        gateway.stop()
    applied = sum(
        float(v)
        for v in re.findall(
            r'guanjia_ingest_messages_total\{channel="heartbeat",outcome="accepted"\} (\S+)',
            metrics,
        )
    )
    return {**out, "idle_mb": idle, "applied": applied}


def reference_trial(
    db_file: Path, broker: MosquittoBroker, args: argparse.Namespace
) -> dict[str, float]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.rss_reference",
            str(db_file),
            broker.host,
            str(broker.port),
            SITE,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        if not ready.startswith("ready"):
            raise RuntimeError(f"rss reference did not start: {ready!r}")
        idle = rss_mb(process.pid)
        out = heartbeats(broker, process.pid, args.devices, args.interval, args.seconds)
        process.terminate()
        applied = float(process.stdout.readline().split()[1])
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return {**out, "idle_mb": idle, "applied": applied}


def run(args: argparse.Namespace) -> list[BenchResult]:
    load0 = loadavg()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = MosquittoBroker(tmp / "broker")
        broker.start()
        db_file = tmp / "gw.db"
        db = f"sqlite:///{db_file}"
        migrate(db)
        register(db, args.devices)
        try:
            rounds = interleave(
                args.rounds,
                {
                    "gateway": lambda n: gateway_trial(tmp, db, broker, args, n),
                    "reference": lambda _: reference_trial(db_file, broker, args),
                },
            )
        finally:
            broker.stop()
    m = rounds.median
    rate = args.devices / args.interval
    print(f"devices: {args.devices}, heartbeat every {args.interval:g} s ({rate:.0f} msg/s)")
    for who in ("gateway", "reference"):
        print(
            f"{who:<10} RSS idle {m(who, 'idle_mb'):4.0f} MB, peak {m(who, 'peak_mb'):4.0f} MB"
            f" (rounds {[round(v) for v in rounds.all(who, 'peak_mb')]}),"
            f" {m(who, 'cpu_us'):5.0f} µs CPU/heartbeat,"
            f" applied/sent {m(who, 'applied') / max(m(who, 'sent'), 1):.3f}"
        )
    peak = m("gateway", "peak_mb")
    print(f"ratio reference / gateway peak: {m('reference', 'peak_mb') / peak:.2f}")
    print(f"gateway peak / {BUDGET_MB:.0f} MB budget: {peak / BUDGET_MB:.2f}")
    print(f"ThingsBoard at this scale: ~{THINGSBOARD_MB_PER_DEVICE * args.devices:.0f} MB")
    size = f"{args.devices} devices, {rate:.0f} heartbeats/s for {args.seconds:g} s"
    kept_up = m("gateway", "applied") / max(m("gateway", "sent"), 1)
    common = {
        "benchmark": "gateway_rss",
        "unit": "MB",
        "better": "lower",
        "figure": peak,
        "rounds": args.rounds,
        "size": size,
        "loadavg_start": load0,
        "cpu_us_per_item": m("gateway", "cpu_us"),
    }
    results = [
        make(
            **common,
            name="gateway peak RSS, devices heartbeating",
            limit=m("reference", "peak_mb"),
            limit_name="bare process holding the same rows + one MQTT connection",
            limit_cpu_us_per_item=m("reference", "cpu_us"),
            notes=f"heartbeats applied/sent {kept_up:.3f}",
        ),
        make(
            **common,
            name="gateway peak RSS against its budget",
            limit=BUDGET_MB,
            limit_name="memory budget",
            limit_kind="budget",
            target="ratio >= 1 (under budget)",
            notes=f"ThingsBoard at this scale ~{THINGSBOARD_MB_PER_DEVICE * args.devices:.0f} MB",
        ),
    ]
    for result in results:
        emit(result)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved rounds.")
    parser.add_argument(
        "--quick", action="store_true", help="12 s per trial, every device heartbeats once."
    )
    parser.add_argument("--smoke", action="store_true", help="Smallest run (not a figure).")
    args = parser.parse_args(argv)
    if args.quick:
        args.interval, args.seconds = 12.0, 12.0
    if args.smoke:
        args.devices, args.interval, args.seconds, args.rounds = 200, 1.0, 1.0, 1
    run(args)


if __name__ == "__main__":
    main()
