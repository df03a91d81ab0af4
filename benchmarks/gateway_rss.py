"""Gateway memory with many registered devices heartbeating: resident set size vs budget.

    python -m benchmarks.gateway_rss [--devices 10000] [--interval 30] [--seconds 60]

Registers `--devices` devices (SQLite), starts a real `guanjia gateway run`, and publishes a
heartbeat per device every `--interval` seconds (spread evenly) for `--seconds`, sampling
the gateway's VmRSS from /proc. Prints the peak RSS against the 300 MB budget (the ratio),
ThingsBoard's published ~6.5 GB per 100k devices scaled to the same count, and whether
ingest kept up (heartbeats applied ÷ sent).
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import create_engine, insert

import contract as c
from gateway.store import database_url, migrate
from gateway.store.schema import devices
from tests.gateway.factories import heartbeat
from tests.gateway.proc import start_gateway
from tests.support.broker import MosquittoBroker

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = MosquittoBroker(tmp / "broker")
        broker.start()
        db = f"sqlite:///{tmp / 'gw.db'}"
        migrate(db)
        register(db, args.devices)
        gateway = start_gateway(tmp, db, broker, "gw-rss", sla_tick_s=5.0)
        try:
            gateway.wait_ready()
            idle = rss_mb(gateway.process.pid)
            pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="fleet")
            pub.connect(broker.host, broker.port)
            pub.loop_start()
            rate = args.devices / args.interval
            start = time.perf_counter()
            sent = 0
            peak = idle
            next_sample = start
            while time.perf_counter() - start < args.seconds:
                target = start + sent / rate
                delay = target - time.perf_counter()
                if delay > 0:
                    time.sleep(min(delay, 0.05))
                    continue
                device = f"dev-{sent % args.devices:06d}"
                pub.publish(
                    str(c.heartbeat_topic(SITE, device)),
                    c.encode(heartbeat(SITE, device, ts=time.time(), interval_s=args.interval)),
                    qos=0,
                )
                sent += 1
                if time.perf_counter() >= next_sample:
                    peak = max(peak, rss_mb(gateway.process.pid))
                    next_sample += 1.0
            time.sleep(3)
            peak = max(peak, rss_mb(gateway.process.pid))
            metrics = gateway.metrics()
            applied = sum(
                float(v)
                for v in re.findall(
                    r'guanjia_ingest_messages_total\{channel="heartbeat",'
                    r'outcome="accepted"\} (\S+)',
                    metrics,
                )
            )
            pub.loop_stop()
        finally:
            gateway.stop()
            broker.stop()
    print(f"devices: {args.devices}, heartbeat every {args.interval:g} s ({rate:.0f} msg/s)")
    print(f"RSS idle {idle:.0f} MB, peak {peak:.0f} MB under load")
    print(f"ratio peak / {BUDGET_MB:.0f} MB budget: {peak / BUDGET_MB:.2f}")
    print(f"ThingsBoard at this scale: ~{THINGSBOARD_MB_PER_DEVICE * args.devices:.0f} MB")
    print(f"heartbeats applied / sent: {applied:.0f} / {sent} = {applied / max(sent, 1):.3f}")


if __name__ == "__main__":
    main()
