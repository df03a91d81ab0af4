"""The live run: the workload published at a set rate to a running gateway."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from benchmarks.ingest.drains import AckCounter, gateway_settings, listen_acks, wait_connected
from benchmarks.ingest.processes import cpu_seconds
from benchmarks.ingest.workload import Messages, msg_ids, prepare_db
from tests.support.broker import MosquittoBroker
from tests.support.gateway_process import GatewayProcess, start_gateway


@dataclass
class Live:
    """A live run: published at `rate`, committed per second, lag at the end."""

    rate: float
    eps: float
    lag_s: float
    cpu_us: float


async def live(  # noqa: PLR0917
    broker: MosquittoBroker,
    messages: Messages,
    db_url: str,
    tmp: Path,
    rate: float,
    processes: int,
) -> Live:
    """Publish `messages` at `rate` to a running gateway; committed/s and final lag."""
    prepare_db(db_url)
    process: GatewayProcess = start_gateway(
        tmp, db_url, broker, "gw-live", **gateway_settings(processes, "live")
    )
    counter = AckCounter(msg_ids(messages))
    listener = listen_acks(broker, counter, "live")
    try:
        process.wait_ready()
        workers = range(1, processes + 1) if processes > 1 else range(0)
        await wait_connected(broker, [f"as gw-live-w{i}" for i in workers])
        counter.pid = process.process.pid
        cpu0 = cpu_seconds(process.process.pid)
        start, sent_at = await asyncio.to_thread(pace, broker, messages, rate)
        if not await asyncio.to_thread(counter.done.wait, 300):
            raise SystemExit(f"live: only {len(counter.seen)} of {len(messages)} acked")
        cpu = counter.last_cpu - cpu0
    finally:
        listener.loop_stop()
        listener.disconnect()
        process.stop()
    n = len(messages)
    return Live(rate, n / (counter.last_at - start), counter.last_at - sent_at, cpu / n * 1e6)


def pace(broker: MosquittoBroker, messages: Messages, rate: float) -> tuple[float, float]:
    """Publish at `rate` per second (QoS 1); returns when sending started and ended."""
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="pub-live")
    pub.max_inflight_messages_set(1000)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    start = time.perf_counter()
    for i, (topic, payload) in enumerate(messages):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        pub.publish(topic, payload, qos=1)
    ended = time.perf_counter()
    pub.loop_stop()
    pub.disconnect()
    return start, ended
