"""Events/s through the durable outbox + end-to-end acks, against bare paho, same broker.

    python -m benchmarks.uplink_throughput [--events 5000] [--inflight 64] [--synchronous full]

Starts its own Mosquitto on a free port and a gateway stand-in (`tests.edge.ack_gateway`: a
real MQTT subscriber that acks every event it receives with a `contract.Ack`, batched every
5 ms like a database commit), then measures, interleaved round by round:

1. the limit: bare paho-mqtt publishing the same payloads at QoS 1 with the same in-flight
   window, until the gateway stand-in has acked every msg_id end to end (what any client
   needs for the same guarantee, minus the durable outbox);
2. the uplink: `Uplink.send_event` (one SQLite WAL transaction per event, fsynced with
   ``synchronous=full``) with delivery running concurrently, until the outbox is empty (every
   row acked by the gateway *and* deleted);
3. for reference: bare paho QoS 1 until every PUBACK (no end-to-end ack), and the disk's raw
   ``write + fsync`` rate (the physical limit of one durable commit per event).

Prints events/s of each, the ratio uplink ÷ limit (1), and `send_event` latency p50/p99.
Numbers depend on the disk and on whatever else shares the CPU (medians of the rounds).
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
from tests.edge.ack_gateway import AckingGateway
from tests.support.broker import MosquittoBroker

SITE = "bench"
DEVICE = "edge-bench-01"
BARE = "bench-bare"


def make_events(count: int, device_id: str = DEVICE) -> list[c.DetectionEvent]:
    now = time.time()
    return [
        c.DetectionEvent(
            ts=now,
            site_id=SITE,
            device_id=device_id,
            event_id=f"ev-{device_id}-{i:08d}",
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


def bare_paho(
    broker: MosquittoBroker, events: list[c.DetectionEvent], inflight: int, *, e2e: bool
) -> float:
    """Seconds to publish all events at QoS 1 until every PUBACK, or every end-to-end Ack."""
    done = threading.Event()
    pubacks = 0
    acked: set[str] = set()
    wanted = {e.msg_id for e in events}
    lock = threading.Lock()

    def on_publish(client: paho.Client, userdata: object, mid: int, rc: object, p: object) -> None:
        nonlocal pubacks
        with lock:
            pubacks += 1
            if not e2e and pubacks == len(events):
                done.set()

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        ack = c.decode(c.Ack, bytes(message.payload))
        assert isinstance(ack, c.Ack)
        with lock:
            acked.update(ack.msg_ids)
            if wanted <= acked:
                done.set()

    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-bare-{e2e}")
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.on_message = on_message
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.subscribe(str(c.ack_topic(SITE, BARE)), qos=1)
    if not subscribed.wait(10):
        raise RuntimeError("bare paho: no SUBACK")
    topic = str(c.event_topic(SITE, BARE))
    payloads = [c.encode(e) for e in events]
    start = time.perf_counter()
    for payload in payloads:
        client.publish(topic, payload, qos=1)
    if not done.wait(300):
        raise RuntimeError(f"bare paho: {pubacks} PUBACKs, {len(acked)} acks of {len(events)}")
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
    deadline = time.monotonic() + 300
    while outbox.stats().depth:
        if time.monotonic() > deadline:
            raise RuntimeError(f"uplink: {outbox.stats().depth} rows never acked")
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
    """Interleave the measurements `repeat` times; report the median of each."""
    batch = make_events(events)
    bare_batch = make_events(events, BARE)
    payload_bytes = len(c.encode(batch[0]))
    limit: list[float] = []
    puback_only: list[float] = []
    uplink: list[float] = []
    disk: list[float] = []
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="guanjia-bench-") as tmp:
        workdir = Path(tmp)
        broker = MosquittoBroker(workdir / "broker")
        broker.start()
        gateway = AckingGateway(broker, SITE).start()
        try:
            for trial in range(repeat):
                disk.append(fsync_rate(workdir, min(events, 2000)))
                limit.append(events / bare_paho(broker, bare_batch, inflight, e2e=True))
                trial_dir = workdir / f"trial-{trial}"
                trial_dir.mkdir()
                seconds, lat = through_uplink(broker, batch, inflight, synchronous, trial_dir)
                uplink.append(events / seconds)
                latencies += lat
                puback_only.append(events / bare_paho(broker, bare_batch, inflight, e2e=False))
        finally:
            gateway.stop()
            broker.stop()
        committed = set(gateway.committed_msg_ids)
    limit_rate = statistics.median(limit)
    uplink_rate = statistics.median(uplink)
    disk_rate = statistics.median(disk)
    puback_rate = statistics.median(puback_only)
    result = {
        "events": float(events),
        "rounds": float(repeat),
        "limit_e2e_per_s": limit_rate,
        "bare_puback_per_s": puback_rate,
        "uplink_per_s": uplink_rate,
        "ratio": uplink_rate / limit_rate,
        "fsync_per_s": disk_rate,
        "ratio_fsync": uplink_rate / disk_rate,
        "write_p50_ms": statistics.median(latencies) * 1000,
        "write_p99_ms": percentile(latencies, 0.99) * 1000,
        "payload_bytes": float(payload_bytes),
        "uplink_committed": float(len(committed & {e.msg_id for e in batch})),
    }
    print(f"events: {events} x {payload_bytes} B, in-flight window {inflight}")
    print(f"median of {repeat} interleaved rounds (shared machine: expect noise)")
    print(f"limit: bare paho QoS 1 + e2e acks: {limit_rate:10.0f} events/s   trials {_fmt(limit)}")
    print(
        f"outbox + delivery ({synchronous:6s}):    {uplink_rate:10.0f} events/s   "
        f"trials {_fmt(uplink)}"
    )
    print(f"ratio outbox+delivery / limit:    {result['ratio']:10.3f}")
    print(
        f"bare paho QoS 1, PUBACK only:     {puback_rate:10.0f} events/s   "
        f"trials {_fmt(puback_only)}"
    )
    print(f"raw write+fsync on this disk:     {disk_rate:10.0f} /s         trials {_fmt(disk)}")
    print(f"ratio outbox+delivery / fsync:    {result['ratio_fsync']:10.3f} (one commit/event)")
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
