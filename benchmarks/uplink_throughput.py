"""Events/s through the durable outbox + MQTT publisher, against bare paho QoS 1, same broker.

    python -m benchmarks.uplink_throughput [--events 5000] [--inflight 64] [--synchronous full]

Starts its own Mosquitto on a free port, then in the same run measures:

1. the limit: bare paho-mqtt QoS 1 publishing of the same payloads with the same in-flight
   window, until every PUBACK is in;
2. the uplink: `Uplink.send_event` (one SQLite WAL transaction per event, fsynced with
   ``synchronous=full``) with the publisher draining concurrently, until the outbox is empty
   (every row acked *and* deleted);
3. the disk: raw ``write + fsync`` of one small record per iteration on the outbox's
   filesystem, the physical limit of one durable commit per event.

Prints events/s of each, the ratio uplink ÷ bare paho, and outbox write (`send_event`)
latency p50/p99. Numbers depend on the disk and on whatever else shares the CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

import contract as c
from edge.mqtt_link import LinkOptions
from edge.outbox import Outbox
from edge.uplink import Uplink
from tests.support.broker import MosquittoBroker

SITE = "bench"
DEVICE = "edge-bench-01"


def make_events(count: int) -> list[c.DetectionEvent]:
    now = time.time()
    return [
        c.DetectionEvent(
            ts=now,
            site_id=SITE,
            device_id=DEVICE,
            event_id=f"ev-bench-{i:08d}",
            phase=c.EventPhase.START,
            seq=0,
            category=c.EventCategory.FIRE_LANE_BLOCKED,
            severity=c.Severity.URGENT,
            camera_id="cam-1",
            zone_id="lane-1",
            track_id=i,
            object_class="car",
            object_category=c.ObjectCategory.VEHICLE,
            score=0.9,
            boxes=[c.BoxEvidence(ts=now, box=(0.1, 0.2, 0.3, 0.4), score=0.9)] * 4,
            dwell_s=61.0,
            started_at=now - 61.0,
            model=c.ModelRef(name="yolox_nano", version="0.1.1rc0-k3d4f111"),
        )
        for i in range(count)
    ]


def bare_paho(broker: MosquittoBroker, payloads: list[bytes], inflight: int) -> float:
    """Seconds to publish all payloads at QoS 1 and receive every PUBACK."""
    done = threading.Event()
    acked = 0
    lock = threading.Lock()

    def on_publish(client: paho.Client, userdata: object, mid: int, rc: object, p: object) -> None:
        nonlocal acked
        with lock:
            acked += 1
            if acked == len(payloads):
                done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare")
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect(broker.host, broker.port)
    client.loop_start()
    topic = str(c.event_topic(SITE, "bench-bare"))
    start = time.perf_counter()
    for payload in payloads:
        client.publish(topic, payload, qos=1)
    if not done.wait(300):
        raise RuntimeError(f"bare paho: only {acked}/{len(payloads)} acked")
    elapsed = time.perf_counter() - start
    client.loop_stop()
    client.disconnect()
    return elapsed


def through_uplink(
    broker: MosquittoBroker,
    events: list[c.DetectionEvent],
    inflight: int,
    synchronous: str,
    workdir: Path,
) -> tuple[float, list[float]]:
    """Seconds from the first send_event to an empty outbox, and per-call write latencies."""
    outbox = Outbox(
        workdir / f"outbox-{synchronous}.db",
        synchronous="full" if synchronous == "full" else "normal",
    )
    options = LinkOptions(
        host=broker.host,
        port=broker.port,
        site_id=SITE,
        device_id=DEVICE,
        software_version="bench",
        inflight=inflight,
    )
    uplink = Uplink(options, outbox)
    uplink.start()
    deadline = time.monotonic() + 10
    while not uplink.link.connected:
        if time.monotonic() > deadline:
            raise RuntimeError("uplink did not connect")
        time.sleep(0.01)
    latencies: list[float] = []
    start = time.perf_counter()
    for event in events:
        t0 = time.perf_counter()
        uplink.send_event(event)
        latencies.append(time.perf_counter() - t0)
    while outbox.stats().depth:
        time.sleep(0.001)
    elapsed = time.perf_counter() - start
    acked = uplink.stats().acked
    uplink.stop()
    outbox.close()
    if acked < len(events):
        raise RuntimeError(f"uplink: only {acked}/{len(events)} acked")
    return elapsed, latencies


def fsync_rate(workdir: Path, count: int) -> float:
    """Durable small writes per second on this filesystem (write + fsync each)."""
    path = workdir / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        start = time.perf_counter()
        for _ in range(count):
            os.write(fd, b"x" * 512)
            os.fsync(fd)
        return count / (time.perf_counter() - start)
    finally:
        os.close(fd)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(events: int, inflight: int, synchronous: str, repeat: int = 3) -> dict[str, float]:
    """Alternate the three measurements `repeat` times; report the median of each."""
    batch = make_events(events)
    payloads = [c.encode(e) for e in batch]
    bare: list[float] = []
    uplink: list[float] = []
    disk: list[float] = []
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="guanjia-bench-") as tmp:
        workdir = Path(tmp)
        broker = MosquittoBroker(workdir / "broker")
        broker.start()
        try:
            for trial in range(repeat):
                disk.append(fsync_rate(workdir, min(events, 2000)))
                bare.append(events / bare_paho(broker, payloads, inflight))
                trial_dir = workdir / f"trial-{trial}"
                trial_dir.mkdir()
                seconds, lat = through_uplink(broker, batch, inflight, synchronous, trial_dir)
                uplink.append(events / seconds)
                latencies += lat
        finally:
            broker.stop()
    bare_rate = statistics.median(bare)
    uplink_rate = statistics.median(uplink)
    disk_rate = statistics.median(disk)
    result = {
        "events": float(events),
        "bare_paho_per_s": bare_rate,
        "uplink_per_s": uplink_rate,
        "ratio": uplink_rate / bare_rate,
        "fsync_per_s": disk_rate,
        "ratio_fsync": uplink_rate / disk_rate,
        "write_p50_ms": statistics.median(latencies) * 1000,
        "write_p99_ms": percentile(latencies, 0.99) * 1000,
        "payload_bytes": float(len(payloads[0])),
    }
    print(f"events: {events} x {len(payloads[0])} B, in-flight window {inflight}")
    print(f"median of {repeat} alternating trials (shared machine: expect noise)")
    print(f"bare paho QoS 1 (limit):      {bare_rate:10.0f} events/s   trials {_fmt(bare)}")
    print(
        f"outbox + publish ({synchronous:6s}):  {uplink_rate:10.0f} events/s   "
        f"trials {_fmt(uplink)}"
    )
    print(f"ratio outbox+publish / bare:  {result['ratio']:10.3f}")
    print(f"raw write+fsync on this disk: {disk_rate:10.0f} /s         trials {_fmt(disk)}")
    print(f"ratio outbox+publish / fsync: {result['ratio_fsync']:10.3f} (one durable commit/event)")
    print(
        f"outbox write latency (send_event, all trials): p50 {result['write_p50_ms']:.3f} ms, "
        f"p99 {result['write_p99_ms']:.3f} ms"
    )
    return result


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in values) + "]"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    run(args.events, args.inflight, args.synchronous, args.repeat)


if __name__ == "__main__":
    main()
