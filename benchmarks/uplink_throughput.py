"""Events/s through the durable outbox + end-to-end acks, against bare paho, same broker.

    python -m benchmarks.uplink_throughput [--events 5000] [--cameras 8] [--quick]

Starts its own Mosquitto and a gateway stand-in (`tests.support.ack_gateway`: a real MQTT
subscriber that acks every event it receives with a `contract.Ack`, batched every 5 ms like a
database commit), then measures, interleaved round by round:

1. the limit: bare paho-mqtt publishing the same payloads at QoS 1 with the same in-flight
   window, until the gateway stand-in has acked every msg_id end to end (what any client
   needs for the same guarantee, minus the durable outbox);
2. the uplink as a node runs it: `--cameras` camera threads each calling `Uplink.send_event`
   for its share of the events (each call returns once its rows are committed and fsynced
   with ``synchronous=full``; calls that arrive together share a commit), with delivery
   running concurrently, until the outbox is empty (every row acked and deleted);
3. the same with one camera thread: every put waits for its own fsync, so this one is bound
   by the disk, and its limit is the disk's raw rate of 512 B in-place writes + fdatasync;
4. for reference: bare paho QoS 1 until every PUBACK (no end-to-end ack).

CPU µs per event is this process's CPU time (all threads, the in-process gateway stand-in
included for both the uplink and the bare client) divided by the events. Prints the medians
and one `RESULT` line per headline figure (see `benchmarks.support.result`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

import contract as c
from benchmarks.support.machine import loadavg
from benchmarks.support.result import BenchResult, emit, make
from benchmarks.support.rounds import Rounds, interleave
from benchmarks.support.stats import percentile
from edge.link_options import LinkOptions
from edge.outbox import Outbox
from edge.uplink import Uplink
from tests.support.ack_gateway import AckingGateway
from tests.support.broker import MosquittoBroker

SITE = "bench"
DEVICE = "edge-bench-01"
BARE = "bench-bare"


def make_events(count: int, device_id: str = DEVICE, tag: str = "") -> list[c.DetectionEvent]:
    now = time.time()
    return [
        c.DetectionEvent(
            ts=now,
            site_id=SITE,
            device_id=device_id,
            event_id=f"ev-{device_id}{tag}-{i:08d}",
            phase=c.EventPhase.START,
            seq=0,
            category=c.EventCategory.FIRE_LANE_BLOCKED,
            severity=c.Severity.URGENT,
            camera_id=f"cam-{i % 8}",
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
) -> tuple[float, float]:
    """Seconds and CPU seconds to publish all events at QoS 1 until every PUBACK, or every
    end-to-end Ack."""
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
    cpu0 = time.process_time()
    start = time.perf_counter()
    # Encoding is part of the work for both: the uplink encodes inside send_event.
    for event in events:
        client.publish(topic, c.encode(event), qos=1)
    if not done.wait(300):
        raise RuntimeError(f"bare paho: {pubacks} PUBACKs, {len(acked)} acks of {len(events)}")
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    client.loop_stop()
    client.disconnect()
    return elapsed, cpu


def through_uplink(
    broker: MosquittoBroker,
    events: list[c.DetectionEvent],
    *,
    inflight: int,
    synchronous: str,
    workdir: Path,
    cameras: int,
) -> dict[str, float | list[float]]:
    """`cameras` threads send their share of `events`; seconds until the outbox is empty."""
    outbox = Outbox(
        workdir / f"outbox-{cameras}.db",
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
    latencies: list[list[float]] = [[] for _ in range(cameras)]
    go = threading.Barrier(cameras + 1)

    def camera(k: int) -> None:
        mine = latencies[k]
        go.wait()
        for event in events[k::cameras]:
            t0 = time.perf_counter()
            uplink.send_event(event)
            mine.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=camera, args=(k,)) for k in range(cameras)]
    for thread in threads:
        thread.start()
    cpu0 = time.process_time()
    go.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    deadline = time.monotonic() + 300
    while outbox.stats().depth:
        if time.monotonic() > deadline:
            raise RuntimeError(f"uplink: {outbox.stats().depth} rows never acked")
        time.sleep(0.001)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    acked = uplink.stats().acked
    commits = outbox.commit_stats()
    uplink.stop()
    outbox.close()
    if acked < len(events):
        raise RuntimeError(f"uplink: only {acked}/{len(events)} acked")
    return {
        "seconds": elapsed,
        "cpu_s": cpu,
        "latencies": [x for lat in latencies for x in lat],
        "puts_per_commit": commits.groups / max(commits.commits, 1),
    }


def fsync_rate(workdir: Path, count: int) -> float:
    """Durable small writes per second on this filesystem: the floor of one commit per event.

    512 B written in place into a preallocated file, then `fdatasync` — what a WAL commit
    costs at least (appending to a growing file would add a metadata journal commit per write
    and understate the disk).
    """
    path = workdir / "fsync.probe"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"\0" * (1 << 20))
        os.fsync(fd)
        block = b"x" * 512
        start = time.perf_counter()
        for i in range(count):
            os.pwrite(fd, block, (i * 512) % (1 << 20))
            os.fdatasync(fd)
        return count / (time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()


def run(
    events: int,
    inflight: int = 64,
    synchronous: str = "full",
    repeat: int = 3,
    cameras: int = 8,
) -> list[BenchResult]:
    """Interleave the measurements `repeat` times; print and return the medians as results."""
    load0 = loadavg()
    bare_batch = make_events(events, BARE)
    payload_bytes = len(c.encode(bare_batch[0]))
    latencies: dict[int, list[float]] = {cameras: [], 1: []}
    committed: list[int] = []
    with tempfile.TemporaryDirectory(prefix="guanjia-bench-") as tmp:
        workdir = Path(tmp)
        broker = MosquittoBroker(workdir / "broker")
        broker.start()
        gateway = AckingGateway(broker, SITE).start()

        def bare(e2e: bool) -> dict[str, float]:
            seconds, cpu = bare_paho(broker, bare_batch, inflight, e2e=e2e)
            return {"rate": events / seconds, "cpu_us": cpu / events * 1e6}

        def uplink(threads: int, round_: int) -> dict[str, float]:
            trial_dir = workdir / f"trial-{round_}-{threads}"
            trial_dir.mkdir()
            batch = make_events(events, tag=f"-r{round_}-t{threads}")
            r = through_uplink(
                broker,
                batch,
                inflight=inflight,
                synchronous=synchronous,
                workdir=trial_dir,
                cameras=threads,
            )
            latencies[threads] += r["latencies"]  # type: ignore[arg-type]
            committed.append(len(set(gateway.committed_msg_ids) & {e.msg_id for e in batch}))
            seconds, cpu = float(r["seconds"]), float(r["cpu_s"])  # type: ignore[arg-type]
            return {
                "rate": events / seconds,
                "cpu_us": cpu / events * 1e6,
                "puts_per_commit": float(r["puts_per_commit"]),  # type: ignore[arg-type]
            }

        try:
            rounds = interleave(
                repeat,
                {
                    "fsync": lambda _: {"rate": fsync_rate(workdir, min(events, 2000))},
                    "limit": lambda _: bare(True),
                    "cameras": lambda r: uplink(cameras, r),
                    "single": lambda r: uplink(1, r),
                    "puback": lambda _: bare(False),
                },
            )
        finally:
            gateway.stop()
            broker.stop()
    if any(n != events for n in committed):
        raise RuntimeError(f"uplink: the stand-in committed {committed} of {events} per round")
    return _report(
        rounds,
        events=events,
        payload_bytes=payload_bytes,
        cameras=cameras,
        repeat=repeat,
        latencies=latencies,
        load0=load0,
        synchronous=synchronous,
    )


def _report(
    rounds: Rounds,
    *,
    events: int,
    payload_bytes: int,
    cameras: int,
    repeat: int,
    latencies: dict[int, list[float]],
    load0: tuple[float, float, float],
    synchronous: str,
) -> list[BenchResult]:
    m = rounds.median
    print(f"events: {events} x {payload_bytes} B, synchronous={synchronous}")
    print(f"median of {repeat} interleaved rounds (load {load0[0]:.2f} at start)")
    rows = [
        ("limit: bare paho QoS 1 + e2e acks", "limit"),
        (f"uplink, {cameras} camera threads", "cameras"),
        ("uplink, 1 camera thread", "single"),
        ("bare paho QoS 1, PUBACK only", "puback"),
    ]
    for label, key in rows:
        print(
            f"{label:<36} {m(key, 'rate'):9.0f} events/s  {m(key, 'cpu_us'):6.0f} µs CPU/event"
            f"  rounds {_fmt(rounds.all(key, 'rate'))}"
        )
    print(f"{'raw write+fdatasync on this disk':<36} {m('fsync', 'rate'):9.0f} /s")
    for threads in (cameras, 1):
        lat = latencies[threads]
        print(
            f"send_event latency, {threads} thread(s): p50 {percentile(lat, 50) * 1000:.2f} ms,"
            f" p99 {percentile(lat, 99) * 1000:.2f} ms;"
            f" puts per commit {m('cameras' if threads > 1 else 'single', 'puts_per_commit'):.1f}"
        )
    size = f"{events} events x {payload_bytes} B"
    common = {"benchmark": "uplink_throughput", "unit": "events/s", "rounds": repeat}
    results = [
        make(
            **common,  # type: ignore[arg-type]
            name=f"outbox + e2e delivery, {cameras} camera threads (group commit)",
            figure=m("cameras", "rate"),
            limit=m("limit", "rate"),
            limit_name="bare paho QoS 1 until every e2e Ack, same broker",
            size=f"{size}, {cameras} threads",
            loadavg_start=load0,
            cpu_us_per_item=m("cameras", "cpu_us"),
            limit_cpu_us_per_item=m("limit", "cpu_us"),
            notes=(
                f"synchronous={synchronous}; {m('cameras', 'puts_per_commit'):.1f} puts per"
                " fsynced commit; send_event p99"
                f" {percentile(latencies[cameras], 99) * 1000:.1f} ms"
            ),
        ),
        make(
            **common,  # type: ignore[arg-type]
            name="outbox + e2e delivery, 1 camera thread",
            figure=m("single", "rate"),
            limit=m("fsync", "rate"),
            limit_name="raw 512 B write+fdatasync/s on the same disk (one commit per event)",
            size=f"{size}, 1 thread",
            loadavg_start=load0,
            cpu_us_per_item=m("single", "cpu_us"),
            notes=(
                f"bare e2e limit {m('limit', 'rate'):.0f}/s: ratio"
                f" {m('single', 'rate') / m('limit', 'rate'):.3f}; a lone thread waits for"
                " its own fsync per event"
            ),
        ),
    ]
    for result in results:
        emit(result)
    return results


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in values) + "]"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--cameras", type=int, default=8, help="Camera threads sending.")
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full")
    parser.add_argument("--repeat", type=int, default=3, help="Interleaved rounds.")
    parser.add_argument("--quick", action="store_true", help="1,000 events (the report's size).")
    parser.add_argument("--smoke", action="store_true", help="Smallest run: 40 events, 1 round.")
    args = parser.parse_args(argv)
    if args.quick:
        args.events = 1000
    if args.smoke:
        args.events, args.repeat = 40, 1
    run(args.events, args.inflight, args.synchronous, args.repeat, args.cameras)


if __name__ == "__main__":
    main()
