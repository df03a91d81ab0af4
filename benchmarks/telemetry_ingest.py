"""Telemetry messages and points per second, ingested and stored, ÷ a bare subscriber.

    python -m benchmarks.telemetry_ingest [--messages 10000] [--points 10] [--nodes 500]
                                          [--rounds 3] [--events 30] [--flood 30000]

Starts its own Mosquitto and VictoriaMetrics (Debian's `victoria-metrics`). Each round runs
three consumers in turn (interleaved, so the machine's other load falls on all three
alike); each drains `--messages` TelemetryBatches of `--points` readings (charging
monitors, a node every 10 s, in range: no tickets) from `--nodes` registered nodes, parked
in its persistent session while it was away:

1. the limit: a bare aiomqtt client (QoS 1, persistent session) that only counts messages;
   beside it, for reference, the gateway's MQTT edge (`MqttIngest`, manual acks) publishing
   one end-to-end Ack per message and doing nothing else — what the contract's delivery
   guarantee costs before any reading is read;
2. the gateway's telemetry session with the embedded store: `MqttIngest` →
   `gateway.main.ingest_batch` → `gateway.readings` (decode, rules, one transaction of
   msg-id claims per batch, points written after the commit, end-to-end Acks), timed until
   every message is committed and every point is in the SQLite store;
3. the same with the InfluxDB v2 writer on (VictoriaMetrics), timed until every point is
   in both.

Prints, per round and as medians: messages/s and points/s, the ratio to the bare drain of
the same round, and the gateway's CPU µs per message (this process, all threads: the
broker and VictoriaMetrics are other processes). Then the event → ticket latency (publish
to commit), with the gateway running both sessions as `gateway.main` does: alone, and during
a flood of `--flood` readings published by another process. And the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import SecretStr

import contract as c
from benchmarks.support.machine import loadavg
from benchmarks.support.result import emit, make
from benchmarks.support.stats import percentile
from gateway.acks import Committed, build_acks
from gateway.config import GatewaySettings, MqttSettings
from gateway.main import build_runtime, ingest_batch
from gateway.mqtt import MqttIngest, Outbound
from gateway.runtime import Runtime
from gateway.store import migrate
from gateway.telemetry.settings import TelemetrySettings
from tests.support.broker import MosquittoBroker
from tests.support.messages import event
from tests.support.victoria import VictoriaMetrics

SITE = "bench"
T0 = time.time() - 3600
DRAIN_TIMEOUT_S = 300.0


def _batches(n: int, points: int, nodes: int, tag: str) -> list[tuple[str, bytes]]:
    out = []
    metrics = [
        ("voltage", 220.0),
        ("current", 2.0),
        ("power", 400.0),
        ("temperature", 30.0),
        ("energy", 1.5),
    ] * 4
    for i in range(n):
        device = f"shed-{i % nodes}"
        ts = T0 + (i // nodes) * 10.0  # each node every 10 s
        readings = [
            c.TelemetryPoint(metric=f"port{1 + k % 4}_{m}", value=v + (i % 7) * 0.1, ts=ts)
            for k, (m, v) in enumerate(metrics)
            if k < points
        ]
        batch = c.TelemetryBatch(
            ts=ts,
            site_id=SITE,
            device_id=device,
            sensor_kind="charging_monitor",
            points=readings,
            msg_id=f"tb-{tag}-{i:07d}",
        )
        out.append((str(c.telemetry_topic(SITE, device)), c.encode(batch)))
    return out


async def _register_session(broker: MosquittoBroker, client_id: str, topic: str) -> None:
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=_never_expires(),
    ) as client:
        await client.subscribe(topic, qos=1)


async def _forget_session(broker: MosquittoBroker, client_id: str) -> None:
    """End a persistent session, so later publishes are not queued for it too."""
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=True,
    ):
        pass


def _never_expires() -> Properties:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 0xFFFFFFFF
    return properties


def _publish(host: str, port: int, messages: Sequence[tuple[str, bytes]], tag: str) -> None:
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{tag}")
    pub.max_inflight_messages_set(1000)
    pub.connect(host, port)
    pub.loop_start()
    infos = [pub.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(120)
    pub.loop_stop()
    pub.disconnect()


async def bare(
    broker: MosquittoBroker, messages: list[tuple[str, bytes]], name: str
) -> tuple[float, float]:
    """Seconds for a bare subscriber to drain the parked messages, and its CPU µs/msg."""
    await _register_session(broker, name, f"guanjia/v1/{SITE}/+/telemetry")
    await asyncio.to_thread(_publish, broker.host, broker.port, messages, name)
    n, got = len(messages), 0
    cpu0, start = time.process_time(), time.perf_counter()
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        identifier=name,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=_never_expires(),
        max_inflight_messages=100,
    ) as client:
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            async for _ in client.messages:
                got += 1
                if got == n:
                    break
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    await _forget_session(broker, name)
    return elapsed, cpu / n * 1e6


def _runtime(
    tmp: Path, broker: MosquittoBroker, name: str, nodes: int, vm: VictoriaMetrics | None
) -> Runtime:
    db = f"sqlite:///{tmp / f'{name}.db'}"
    migrate(db)
    influx: dict[str, object] = {}
    if vm is not None:
        influx = {
            "influx_url": vm.url,
            "influx_org": "guanjia",
            "influx_bucket": "telemetry",
            "influx_token": SecretStr("bench"),
            "influx_flush_interval_s": 0.5,
        }
    settings = GatewaySettings(
        database_url=db,
        jwt_secret="bench-secret-0123456789abcdef-0123456789",
        mqtt=MqttSettings(host=broker.host, port=broker.port, client_id=name, sites=[SITE]),
        telemetry=TelemetrySettings(path=tmp / f"{name}.telemetry.db", **influx),
    )
    runtime = build_runtime(settings)
    for i in range(nodes):
        runtime.store.upsert_device(f"shed-{i}", SITE, "charging")
        runtime.store.set_sensor_node(f"shed-{i}", "charging_monitor", esphome=False)
    runtime.store.upsert_device("cam-0", SITE, "camera")
    return runtime


def _close(runtime: Runtime) -> None:
    assert runtime.telemetry is not None
    runtime.telemetry.close()
    runtime.store.close()


async def edge_only(
    runtime: Runtime, broker: MosquittoBroker, messages: list[tuple[str, bytes]]
) -> tuple[float, float]:
    """Seconds for the MQTT edge alone to drain the messages, publishing their Acks; its
    CPU µs/msg."""
    mqtt = runtime.settings.mqtt.telemetry_connection()
    await _register_session(broker, mqtt.session_id, f"guanjia/v1/{SITE}/+/telemetry")
    await asyncio.to_thread(_publish, broker.host, broker.port, messages, mqtt.session_id)
    n, got = len(messages), 0
    done = asyncio.Event()

    async def acks_only(batch: Sequence[tuple[str, bytes]]) -> list[Outbound]:
        nonlocal got
        got += len(batch)
        if got >= n:
            done.set()
        committed = [
            Committed(SITE, topic.split("/")[3], msg_id=json.loads(payload)["msg_id"])
            for topic, payload in batch
        ]
        return [
            Outbound(str(c.ack_topic(a.site_id, a.device_id)), c.encode(a))
            for a in build_acks(committed, time.time())
        ]

    ingest = MqttIngest(mqtt, acks_only, filters=runtime.settings.mqtt.telemetry_filters)
    cpu0, start = time.process_time(), time.perf_counter()
    task = asyncio.create_task(ingest.run())
    async with asyncio.timeout(DRAIN_TIMEOUT_S):
        await done.wait()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await _forget_session(broker, mqtt.session_id)
    return elapsed, cpu / n * 1e6


async def gateway(
    runtime: Runtime, broker: MosquittoBroker, messages: list[tuple[str, bytes]], points: int
) -> dict[str, float]:
    """Drain the parked messages through the gateway's telemetry session."""
    mqtt = runtime.settings.mqtt.telemetry_connection()
    await _register_session(broker, mqtt.session_id, f"guanjia/v1/{SITE}/+/telemetry")
    await asyncio.to_thread(_publish, broker.host, broker.port, messages, mqtt.session_id)
    n = len(messages)
    telemetry = runtime.telemetry
    assert telemetry is not None
    done = asyncio.Event()
    committed = 0

    async def counted(batch: Sequence[tuple[str, bytes]]) -> list[Outbound]:
        nonlocal committed
        out = await ingest_batch(runtime, batch)  # committed and stored when it returns
        committed += len(batch)
        if committed >= n:
            done.set()
        return out

    ingest = MqttIngest(mqtt, counted, filters=runtime.settings.mqtt.telemetry_filters)
    cpu0, start = time.process_time(), time.perf_counter()
    task = asyncio.create_task(ingest.run())
    async with asyncio.timeout(DRAIN_TIMEOUT_S):
        await done.wait()
        stored_s = time.perf_counter() - start
        influx_s = 0.0
        if telemetry.influx is not None:
            while telemetry.influx.written < n * points:  # noqa: ASYNC110 (another thread counts)
                await asyncio.sleep(0.01)
            influx_s = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await _forget_session(broker, mqtt.session_id)
    assert telemetry.sqlite.count() == n * points, telemetry.sqlite.count()
    return {
        "stored_s": stored_s,
        "both_s": max(stored_s, influx_s),
        "cpu_us": cpu / n * 1e6,
        "dropped": float(telemetry.influx.dropped if telemetry.influx else 0),
    }


class EventClock:
    """Publish times (a thread of its own) and commit times of DetectionEvents."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.committed: dict[str, float] = {}
        self.lock = threading.Lock()

    def latencies(self, ids: Sequence[str]) -> list[float]:
        with self.lock:
            return [self.committed[i] - self.sent[i] for i in ids if i in self.committed]


async def event_latency(
    runtime: Runtime,
    broker: MosquittoBroker,
    events: int,
    flood: int,
    args: argparse.Namespace,
) -> tuple[list[float], int]:
    """Event → committed ticket latencies, while another process floods `flood` readings
    (0: alone); and how many events were sent while the flood was still going."""
    mqtt = runtime.settings.mqtt
    clock = EventClock()

    async def events_session(batch: Sequence[tuple[str, bytes]]) -> list[Outbound]:
        out = await ingest_batch(runtime, batch)
        now = time.perf_counter()
        with clock.lock:
            for topic, payload in batch:
                if topic.endswith("/event"):
                    clock.committed[json.loads(payload)["msg_id"]] = now
        return out

    sessions = [
        MqttIngest(mqtt, events_session, filters=mqtt.event_filters),
        MqttIngest(
            mqtt.telemetry_connection(),
            lambda b: ingest_batch(runtime, b),
            filters=mqtt.telemetry_filters,
        ),
    ]
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    for session in sessions:
        await asyncio.wait_for(session.connected.wait(), 30)
    flooder = None
    if flood:
        flooder = subprocess.Popen(  # noqa: ASYNC220 (starts at once) another process: its CPU is not the gateway's
            [
                sys.executable,
                "-m",
                "benchmarks.telemetry_ingest",
                "--publish-flood",
                f"{broker.host}:{broker.port}",
                "--messages",
                str(flood),
                "--points",
                str(args.points),
                "--nodes",
                str(args.nodes),
            ],
        )
        await asyncio.sleep(0.5)  # the flood is under way
    ids = [f"lat{flood}x{i:06d}xxxxxxxx" for i in range(events)]
    during = 0

    def publish_events() -> None:
        nonlocal during
        pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-events-{flood}")
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        for i, msg_id in enumerate(ids):
            message = event(
                SITE, "cam-0", f"event-{flood}-{i:06d}", zone_id=f"z{flood}-{i}", msg_id=msg_id
            )
            with clock.lock:
                clock.sent[msg_id] = time.perf_counter()
            pub.publish(str(c.event_topic(SITE, "cam-0")), c.encode(message), qos=1)
            if flooder is not None and flooder.poll() is None:
                during += 1
            time.sleep(0.1)
        pub.loop_stop()
        pub.disconnect()

    await asyncio.to_thread(publish_events)
    deadline = time.monotonic() + 60
    while len(clock.latencies(ids)) < events and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    if flooder is not None:
        await asyncio.to_thread(flooder.wait, 300)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    found = clock.latencies(ids)
    assert len(found) == events, f"only {len(found)} of {events} events reached a ticket"
    return found, during


def _median(values: list[float]) -> float:
    return percentile(values, 50)


def _p90(values: list[float]) -> float:
    return percentile(values, 90)


async def _latency_report(
    tmp: Path, broker: MosquittoBroker, vm: VictoriaMetrics, args: argparse.Namespace
) -> None:
    """Event → ticket latency alone and during a flood of readings from another process."""
    runtime = _runtime(tmp, broker, "gw-latency", args.nodes, vm)
    alone, _ = await event_latency(runtime, broker, args.events, 0, args)
    during, sent = await event_latency(runtime, broker, args.events, args.flood, args)
    _close(runtime)
    for what, lat in (("alone", alone), (f"during a {args.flood:,} flood", during)):
        print(
            f"event → ticket {what:<22} p50 {_median(lat) * 1000:6.1f} ms  "
            f"p90 {_p90(lat) * 1000:6.1f} ms  "
            f"max {max(lat) * 1000:6.1f} ms  ({len(lat)} events"
            + (f", {sent} sent while the flood ran)" if what != "alone" else ")")
        )


def _emit(  # noqa: PLR0917 - one result line's figures
    args: argparse.Namespace,
    label: str,
    rate: float,
    cpu_us: float,
    load0: tuple[float, float, float],
    bare_rate: float,
    bare_cpu_us: float,
    edge_rate: float,
) -> None:
    n, p = args.messages, args.points
    emit(
        make(
            benchmark="telemetry_ingest",
            name=f"telemetry batches stored/s, {label}",
            figure=rate,
            unit="msg/s",
            limit=bare_rate,
            limit_name="bare aiomqtt QoS 1 drain of the same parked backlog",
            target="ratio >= 0.5, >= 5,000 msg/s",
            cpu_us_per_item=cpu_us,
            limit_cpu_us_per_item=bare_cpu_us,
            rounds=args.rounds,
            size=f"{n} batches x {p} points from {args.nodes} nodes",
            loadavg_start=load0,
            notes=f"{rate * p:,.0f} points/s; MQTT edge + Acks alone: {edge_rate:,.0f} msg/s",
        )
    )


async def main_async(args: argparse.Namespace) -> None:
    load0 = loadavg()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = MosquittoBroker(tmp / "broker")
        broker.start()
        vm = VictoriaMetrics(tmp / "vm")
        vm.start()
        try:
            n, p = args.messages, args.points
            print(
                f"{n} TelemetryBatches of {p} points from {args.nodes} nodes, {args.rounds} rounds"
            )
            rows: dict[str, list[dict[str, float]]] = {"sqlite": [], "influx": []}
            bares: list[float] = []
            edges: list[float] = []
            bare_cpus: list[float] = []
            edge_cpus: list[float] = []
            for r in range(args.rounds):
                bare_s, bare_cpu = await bare(
                    broker, _batches(n, p, args.nodes, f"bare{r}"), f"bare{r}"
                )
                bares.append(bare_s)
                bare_cpus.append(bare_cpu)
                runtime = _runtime(tmp, broker, f"edge{r}", 0, None)
                edge_s, edge_cpu = await edge_only(
                    runtime, broker, _batches(n, p, args.nodes, f"edge{r}")
                )
                edges.append(edge_s)
                edge_cpus.append(edge_cpu)
                _close(runtime)
                line = (
                    f"round {r + 1}: bare {n / bare_s:7,.0f} | edge+acks {n / edge_s:6,.0f} msg/s"
                )
                for key, server in (("sqlite", None), ("influx", vm)):
                    name = f"gw-{key}{r}"
                    runtime = _runtime(tmp, broker, name, args.nodes, server)
                    got = await gateway(runtime, broker, _batches(n, p, args.nodes, name), p)
                    got["ratio"] = bare_s / got["both_s"]
                    rows[key].append(got)
                    _close(runtime)
                    line += (
                        f" | {key} {n / got['both_s']:6,.0f} msg/s ratio {got['ratio']:.2f}"
                        f" {got['cpu_us']:.0f} µs/msg"
                    )
                print(line, flush=True)
            bare_rate = _median([n / b for b in bares])
            print(
                f"\nmedian of {args.rounds} rounds (ratios against the bare drain of each round):"
            )
            print(
                f"bare aiomqtt QoS 1 drain     {bare_rate:8,.0f} msg/s (the limit)  "
                f"{_median(bare_cpus):.0f} µs CPU/msg"
            )
            edge_rate = _median([n / e for e in edges])
            print(
                f"MQTT edge + Acks, no work    {edge_rate:8,.0f} msg/s "
                f"(ratio {_median([b / e for b, e in zip(bares, edges, strict=True)]):.2f}: "
                f"the end-to-end Acks' own cost)  {_median(edge_cpus):.0f} µs CPU/msg"
            )
            for key, label in (("sqlite", "embedded store"), ("influx", "embedded + InfluxDB")):
                got_rows = rows[key]
                rate = _median([n / g["both_s"] for g in got_rows])
                print(
                    f"{label:<28} {rate:8,.0f} msg/s {rate * p:9,.0f} points/s  ratio "
                    f"{_median([g['ratio'] for g in got_rows]):.2f}  "
                    f"{_median([g['cpu_us'] for g in got_rows]):.0f} µs CPU/msg  "
                    f"dropped {max(g['dropped'] for g in got_rows):.0f}"
                )
                _emit(
                    args,
                    label,
                    rate,
                    _median([g["cpu_us"] for g in got_rows]),
                    load0,
                    bare_rate,
                    _median(bare_cpus),
                    edge_rate,
                )
            if args.events:
                await _latency_report(tmp, broker, vm, args)
            print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        finally:
            vm.stop()
            broker.stop()


def _flood(target: str, args: argparse.Namespace) -> None:
    host, port = target.rsplit(":", 1)
    _publish(host, int(port), _batches(args.messages, args.points, args.nodes, "flood"), "flood")


def main(argv: list[str] | None = None) -> None:
    # aiomqtt warns for every publish past 1,000 in flight: the Acks of a drain do that.
    logging.getLogger("mqtt").setLevel(logging.ERROR)  # aiomqtt's logger
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=30, help="event latency samples (0: skip)")
    parser.add_argument("--flood", type=int, default=30_000, help="readings in the flood")
    parser.add_argument("--publish-flood", metavar="HOST:PORT", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="3,000 batches, 10 latency samples.")
    parser.add_argument("--smoke", action="store_true", help="Smallest run (not a figure).")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.events, args.flood = 3000, 10, 10_000
    if args.smoke:
        args.messages, args.nodes, args.events, args.rounds = 100, 20, 0, 1
    if args.publish_flood:
        _flood(args.publish_flood, args)
        return
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
