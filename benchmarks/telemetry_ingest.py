"""Telemetry messages and points per second, ingested and stored, ÷ a bare subscriber.

    python -m benchmarks.telemetry_ingest [--messages 10000] [--points 10] [--nodes 500]

Starts its own Mosquitto and VictoriaMetrics (Debian's `victoria-metrics`). For each consumer
it parks `--messages` TelemetryBatches of `--points` readings (charging monitors, in range:
no tickets) from `--nodes` registered sensor nodes in a persistent session while the
consumer is away, then starts the consumer and times the drain:

1. the limit: a bare aiomqtt client (QoS 1, persistent session) that only counts messages;
2. the gateway with the embedded store only: the real ingest path (`MqttIngest` → the
   contract decoder → the telemetry pipeline → one transaction per batch for the msg-id
   claims → Acks), until every message is committed and every point is in the SQLite store;
3. the same with the InfluxDB v2 writer on (VictoriaMetrics), until every point is in both.

Prints messages/s and points/s of each, the ratio to the bare drain, and the gateway
process's CPU µs per message (all its threads; the broker and VictoriaMetrics are other
processes). Then, with `--events N`, the latency from publishing a DetectionEvent to its
ticket being committed, alone and during a telemetry flood. The machine's other load makes
the numbers noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

import contract as c
from benchmarks.support.machine import loadavg
from benchmarks.support.result import emit, make
from benchmarks.support.rounds import Rounds
from benchmarks.support.stats import percentile
from gateway.config import GatewaySettings, MqttSettings
from gateway.main import build_runtime, ingest_batch
from gateway.mqtt import MqttIngest
from gateway.runtime import Runtime
from gateway.store import migrate
from gateway.telemetry.settings import TelemetrySettings
from tests.support.broker import MosquittoBroker
from tests.support.messages import event
from tests.support.victoria import VictoriaMetrics

SITE = "bench"
T0 = time.time() - 3600


def _batches(n: int, points: int, nodes: int, tag: str) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        device = f"shed-{i % nodes}"
        ts = T0 + (i // nodes) * 10.0  # each node every 10 s
        readings = [
            c.TelemetryPoint(metric=f"port{1 + k % 4}_{m}", value=v + (i % 7) * 0.1, ts=ts)
            for k, (m, v) in enumerate(
                [
                    ("voltage", 220.0),
                    ("current", 2.0),
                    ("power", 400.0),
                    ("temperature", 30.0),
                    ("energy", 1.5),
                ]
                * 4
            )
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


async def _register_session(broker: MosquittoBroker, client_id: str) -> None:
    async with aiomqtt.Client(
        broker.host, broker.port, identifier=client_id, clean_session=False
    ) as client:
        await client.subscribe(f"guanjia/v1/{SITE}/+/#", qos=1)


def _publish(broker: MosquittoBroker, messages: Sequence[tuple[str, bytes]], tag: str) -> None:
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{tag}")
    pub.max_inflight_messages_set(1000)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    infos = [pub.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(120)
    pub.loop_stop()
    pub.disconnect()


async def bare(
    broker: MosquittoBroker, messages: list[tuple[str, bytes]], name: str = "bare"
) -> tuple[float, float]:
    """Seconds and CPU seconds for a bare subscriber to drain the parked messages."""
    await _register_session(broker, name)
    await asyncio.to_thread(_publish, broker, messages, name)
    n, got = len(messages), 0
    cpu0, start = time.process_time(), time.perf_counter()
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        identifier=name,
        clean_session=False,
        max_inflight_messages=100,
    ) as client:
        async for _ in client.messages:
            got += 1
            if got == n:
                break
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    async with aiomqtt.Client(broker.host, broker.port, identifier=name, clean_session=True):
        pass
    return elapsed, cpu


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


async def gateway(
    runtime: Runtime, broker: MosquittoBroker, messages: list[tuple[str, bytes]], points: int
) -> dict[str, float]:
    """Drain the parked messages through the real ingest; seconds to committed and stored."""
    name = runtime.settings.mqtt.session_id
    await _register_session(broker, name)
    await asyncio.to_thread(_publish, broker, messages, name)
    n = len(messages)
    telemetry = runtime.telemetry
    assert telemetry is not None
    done = asyncio.Event()
    committed = 0

    async def counted(batch: Sequence[tuple[str, bytes]]) -> list[object]:
        nonlocal committed
        out = await ingest_batch(runtime, batch)
        committed += len(batch)
        if committed >= n:
            done.set()
        return out  # type: ignore[return-value]

    ingest = MqttIngest(runtime.settings.mqtt, counted)  # type: ignore[arg-type]
    cpu0, start = time.process_time(), time.perf_counter()
    task = asyncio.create_task(ingest.run())
    await done.wait()
    committed_s = time.perf_counter() - start
    await asyncio.to_thread(telemetry.sink.flush, 120)
    stored_s = time.perf_counter() - start
    influx_s = 0.0
    if telemetry.influx is not None:
        while telemetry.influx.written < n * points:  # noqa: ASYNC110 (another thread counts)
            await asyncio.sleep(0.01)
        influx_s = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert telemetry.sqlite.count() == n * points, telemetry.sqlite.count()
    return {
        "committed_s": committed_s,
        "stored_s": stored_s,
        "influx_s": influx_s,
        "cpu_us": cpu / n * 1e6,
        "dropped": float(telemetry.sink.dropped),
    }


async def event_latency(
    runtime: Runtime,
    broker: MosquittoBroker,
    events: int,
    flood: list[tuple[str, bytes]],
    *,
    single_session: bool = False,
) -> list[float]:
    """Seconds from publishing each DetectionEvent to its ticket existing, with `flood`
    published alongside (empty: alone)."""
    mqtt = runtime.settings.mqtt
    split = mqtt.telemetry_split and not single_session
    ingest = MqttIngest(
        mqtt,
        lambda b: ingest_batch(runtime, b),
        filters=mqtt.event_filters if split else None,
        unsubscribe=mqtt.telemetry_filters if split else (),
    )
    sessions = [ingest]
    if split:  # as gateway.main runs them: readings on a session of their own
        sessions.append(
            MqttIngest(
                mqtt.telemetry_connection(),
                lambda b: ingest_batch(runtime, b),
                filters=mqtt.telemetry_filters,
            )
        )
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    for session in sessions:
        await session.connected.wait()
    flooding = (
        asyncio.create_task(asyncio.to_thread(_publish, broker, flood, "flood")) if flood else None
    )
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="pub-events")
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    latencies = []
    before = runtime.store.list_tickets(device_id="cam-0", limit=1).total
    for i in range(events):
        message = event(
            SITE, "cam-0", f"latency-{len(flood)}-{i:04d}", zone_id=f"z{len(flood)}-{i}"
        )
        sent = time.perf_counter()
        pub.publish(str(c.event_topic(SITE, "cam-0")), c.encode(message), qos=1).wait_for_publish(
            10
        )
        while runtime.store.list_tickets(device_id="cam-0", limit=1).total <= before + i:  # noqa: ASYNC110
            await asyncio.sleep(0.002)
        latencies.append(time.perf_counter() - sent)
        await asyncio.sleep(0.05)
    pub.loop_stop()
    pub.disconnect()
    if flooding is not None:
        await flooding
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return latencies


async def main_async(args: argparse.Namespace) -> None:
    load0 = loadavg()
    rounds = Rounds()
    n, p = args.messages, args.points
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = MosquittoBroker(tmp / "broker")
        broker.start()
        vm = VictoriaMetrics(tmp / "vm")
        vm.start()
        try:
            print(f"messages: {n} of {p} points from {args.nodes} nodes")
            for number in range(args.rounds):  # interleaved: bare, embedded, embedded+influx
                bare_s, bare_cpu = await bare(
                    broker, _batches(n, p, args.nodes, f"bare{number}"), f"bare{number}"
                )
                rounds.add("bare", {"rate": n / bare_s, "cpu_us": bare_cpu / n * 1e6})
                print(f"round {number + 1}: bare aiomqtt drain {n / bare_s:8,.0f} msg/s")
                for name, server in (("gw-sqlite", None), ("gw-influx", vm)):
                    tag = f"{name}-{number}"
                    runtime = _runtime(tmp, broker, tag, args.nodes, server)
                    r = await gateway(runtime, broker, _batches(n, p, args.nodes, tag), p)
                    rounds.add(name, {"rate": n / r["stored_s"], "cpu_us": r["cpu_us"]})
                    label = "embedded store" if server is None else "embedded + InfluxDB"
                    print(
                        f"  {label:<21} committed {n / r['committed_s']:8,.0f} msg/s, stored "
                        f"{n / r['stored_s']:8,.0f} msg/s = {n * p / r['stored_s']:9,.0f}"
                        f" points/s (ratio {bare_s / r['stored_s']:.2f}),"
                        f" {r['cpu_us']:.0f} µs CPU/msg"
                        + (f", in InfluxDB after {r['influx_s']:.1f} s" if server else "")
                        + f", dropped {r['dropped']:.0f}"
                    )
                    if server is not None and args.events and number == args.rounds - 1:
                        await _latencies(runtime, broker, args, n, p)
                    assert runtime.telemetry is not None
                    runtime.telemetry.close()
                    runtime.store.close()
        finally:
            vm.stop()
            broker.stop()
    m = rounds.median
    for name, label in (("gw-sqlite", "embedded store"), ("gw-influx", "embedded + InfluxDB")):
        emit(
            make(
                benchmark="telemetry_ingest",
                name=f"telemetry batches stored/s, {label}",
                figure=m(name, "rate"),
                unit="msg/s",
                limit=m("bare", "rate"),
                limit_name="bare aiomqtt drain of the same parked backlog",
                cpu_us_per_item=m(name, "cpu_us"),
                limit_cpu_us_per_item=m("bare", "cpu_us"),
                rounds=args.rounds,
                size=f"{n} batches x {p} points from {args.nodes} nodes",
                loadavg_start=load0,
                notes=f"{m(name, 'rate') * p:,.0f} points/s",
            )
        )


async def _latencies(
    runtime: Runtime, broker: MosquittoBroker, args: argparse.Namespace, n: int, p: int
) -> None:
    alone = await event_latency(runtime, broker, args.events, [])
    flood = _batches(n, p, args.nodes, "flood")
    during = await event_latency(runtime, broker, args.events, flood)
    for what, lat in (("alone", alone), ("during flood", during)):
        print(
            f"event → ticket {what:<13} p50 {percentile(lat, 50) * 1000:6.1f} ms"
            f"  max {max(lat) * 1000:6.1f} ms  ({len(lat)} events)"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--events", type=int, default=20, help="event latency samples (0: skip)")
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved rounds.")
    parser.add_argument("--quick", action="store_true", help="3,000 batches, no latency run.")
    parser.add_argument("--smoke", action="store_true", help="Smallest run (not a figure).")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.events = 3000, 0
    if args.smoke:
        args.messages, args.nodes, args.events, args.rounds = 100, 20, 0, 1
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
