"""Event → ticket latency with the gateway running both sessions as `gateway.main` does:
alone, and during a flood of readings published by another process."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

import contract as c
from benchmarks.support.stats import percentile
from benchmarks.telemetry.drains import SETTLE_S, close_runtime, make_runtime
from benchmarks.telemetry.workload import DRAIN_TIMEOUT_S, SITE
from gateway.ingest_loop import ingest_batch
from gateway.mqtt import MqttIngest, Outbound
from gateway.runtime import Runtime
from tests.support.broker import MosquittoBroker
from tests.support.messages import event
from tests.support.victoria import VictoriaMetrics


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
        # The telemetry session drains the rest of the flood before the sessions close:
        # closing it mid-drain failed the Acks in flight ("ack publish failed … connection
        # lost (closed)"), the benchmark's teardown and not the gateway.
        readings = sessions[1]
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while readings.received < flood or readings.pending:
            assert time.monotonic() < deadline, "the flood was not drained"
            await asyncio.sleep(0.05)
    await asyncio.sleep(SETTLE_S)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    found = clock.latencies(ids)
    assert len(found) == events, f"only {len(found)} of {events} events reached a ticket"
    failed = sum(s.publish_failures for s in sessions)
    assert failed == 0, f"{failed} Ack publishes failed"
    return found, during


def median(values: list[float]) -> float:
    return percentile(values, 50)


def p90(values: list[float]) -> float:
    return percentile(values, 90)


async def latency_report(
    tmp: Path, broker: MosquittoBroker, vm: VictoriaMetrics, args: argparse.Namespace
) -> None:
    """Event → ticket latency alone and during a flood of readings from another process."""
    runtime = make_runtime(tmp, broker, "gw-latency", args.nodes, vm)
    alone, _ = await event_latency(runtime, broker, args.events, 0, args)
    during, sent = await event_latency(runtime, broker, args.events, args.flood, args)
    close_runtime(runtime)
    for what, lat in (("alone", alone), (f"during a {args.flood:,} flood", during)):
        print(
            f"event → ticket {what:<22} p50 {median(lat) * 1000:6.1f} ms  "
            f"p90 {p90(lat) * 1000:6.1f} ms  "
            f"max {max(lat) * 1000:6.1f} ms  ({len(lat)} events"
            + (f", {sent} sent while the flood ran)" if what != "alone" else ")")
        )
