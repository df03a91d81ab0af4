"""The benchmark's consumers of one parked backlog: the bare drain (the limit), the MQTT
edge publishing Acks and nothing else, and the gateway's telemetry session."""

from __future__ import annotations

import asyncio
import gc
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import aiomqtt
from pydantic import SecretStr

from benchmarks.support.machine import process_cpu_s
from benchmarks.support.publish import publish_all
from benchmarks.telemetry.workload import (
    ACKS,
    DRAIN_TIMEOUT_S,
    SITE,
    collect_acks,
    forget_session,
    persistent_session,
    register_session,
)
from gateway.acks import Committed
from gateway.config import GatewaySettings
from gateway.heap import settle
from gateway.ingest_loop import ingest_batch
from gateway.main import build_runtime
from gateway.mqtt import MqttIngest, Outbound
from gateway.mqtt_settings import MqttSettings
from gateway.receiver_ingest import ReceiverIngest
from gateway.runtime import Runtime
from gateway.store import migrate
from gateway.telemetry.acks import ack_messages
from gateway.telemetry.influx import InfluxOptions
from gateway.telemetry.settings import TelemetrySettings
from tests.support.broker import MosquittoBroker
from tests.support.victoria import VictoriaMetrics


async def bare(
    broker: MosquittoBroker, messages: list[tuple[str, bytes]], name: str, *, v311: bool = False
) -> tuple[float, float, float]:
    """Seconds for a bare subscriber (MQTT 5, or 3.1.1 as the gateway's telemetry session
    speaks) to drain the parked messages, its CPU µs/msg and the broker's."""
    await register_session(broker, name, f"guanjia/v1/{SITE}/+/telemetry")
    await asyncio.to_thread(publish_all, broker.host, broker.port, messages, name)
    n, got = len(messages), 0
    session = persistent_session(v311=v311)
    clock = DrainClock(broker)
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        identifier=name,
        max_inflight_messages=100,
        **session,
    ) as client:
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            async for _ in client.messages:
                got += 1
                clock.first(1)
                if got == n:
                    break
    seconds, cpu_us = clock.stop(n)
    await forget_session(broker, name)
    return seconds, cpu_us, clock.broker_us


class DrainClock:
    """A drain's clock and CPU, from the first batch received to the last message: the
    connection (and a receiver process's start) stays off the clock, alike for every
    consumer. The first batch's messages arrived before the clock started, so they are left
    out of the rate and the CPU a message; `stop` scales the time to all `n` messages."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.broker_pid = broker.process.pid if broker.process is not None else None
        """The broker's process: its CPU is counted apart (not the consumer's)."""
        self.children: list[int] = []
        """Other processes whose CPU is the consumer's (a receiver process)."""
        self.started: float | None = None
        self.before = 0
        self.split_us: list[float] = []
        """At `stop`: CPU µs a message of this process, then of each child."""
        self.broker_us = 0.0
        """At `stop`: the broker's CPU µs a message (not in the consumer's)."""
        self._cpu0: list[float] = []
        self._broker0 = 0.0

    def _broker(self) -> float:
        return process_cpu_s(self.broker_pid) if self.broker_pid is not None else 0.0

    def _cpu(self) -> list[float]:
        return [time.process_time()] + [process_cpu_s(pid) for pid in self.children]

    def first(self, size: int, children: list[int] | None = None) -> None:
        """A batch of `size` arrived: the first one starts the clock."""
        if self.started is None:
            self.children = list(children or [])
            self.started, self.before, self._cpu0 = time.perf_counter(), size, self._cpu()
            self._broker0 = self._broker()

    def stop(self, n: int) -> tuple[float, float]:
        """(seconds for all `n` at the measured rate, CPU µs a message) until now."""
        assert self.started is not None, "no message arrived"
        elapsed, counted = time.perf_counter() - self.started, max(1, n - self.before)
        self.broker_us = (self._broker() - self._broker0) / counted * 1e6
        self.split_us = [
            (now - then) / counted * 1e6 for now, then in zip(self._cpu(), self._cpu0, strict=True)
        ]
        return elapsed * n / counted, sum(self.split_us)


FLUSH_S = 0.5
"""The InfluxDB writer's flush interval in the benchmark (the gateway's default is 1 s)."""
JITTER_S = InfluxOptions("", "", "", "").jitter_s
"""… and the random jitter added to it (not a setting)."""

SETTLE_S = 1.0
"""Off the clock, before the drain's connection closes: the broker's PUBACKs of the last Acks
trail the Acks themselves (every device already holds its Ack); closing sooner fails those
publishes ("connection lost (closed)"), which the benchmark used to log: its own teardown,
not a gateway fault."""


class GcClock:
    """CPU seconds the garbage collector spent while it is on (`gc.callbacks`)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full = 0
        self._start = 0.0

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self._tick)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._tick)

    def _tick(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.process_time()
            return
        self.seconds += time.process_time() - self._start
        self.full += info["generation"] == 2


def make_runtime(
    tmp: Path,
    broker: MosquittoBroker,
    name: str,
    nodes: int,
    vm: VictoriaMetrics | None,
    *,
    processes: int = 1,
    history: Path | None = None,
) -> Runtime:
    """A gateway runtime on its own files; its embedded store a copy of `history` if given
    (`workload.history`)."""
    db = f"sqlite:///{tmp / f'{name}.db'}"
    migrate(db)
    if history is not None:
        shutil.copyfile(history, tmp / f"{name}.telemetry.db")
    influx: dict[str, object] = {}
    if vm is not None:
        influx = {
            "influx_url": vm.url,
            "influx_org": "guanjia",
            "influx_bucket": "telemetry",
            "influx_token": SecretStr("bench"),
            "influx_flush_interval_s": FLUSH_S,
        }
    settings = GatewaySettings(
        database_url=db,
        jwt_secret="bench-secret-0123456789abcdef-0123456789",
        mqtt=MqttSettings(
            host=broker.host,
            port=broker.port,
            client_id=name,
            sites=[SITE],
            telemetry_processes=processes,
        ),
        telemetry=TelemetrySettings(path=tmp / f"{name}.telemetry.db", **influx),
    )
    runtime = build_runtime(settings)
    for i in range(nodes):
        runtime.store.devices.upsert_device(f"shed-{i}", SITE, "charging")
        runtime.store.sensors.set_sensor_node(f"shed-{i}", "charging_monitor", esphome=False)
    runtime.store.devices.upsert_device("cam-0", SITE, "camera")
    settle(collect=False)  # as the gateway's lifespan does once started (`gateway.heap`)
    return runtime


async def derive_every(runtime: Runtime) -> None:
    """The gateway's clock loop's share of the store (`gateway.periodic.telemetry_step`):
    every `telemetry_tick_s`, `derive` when due (`telemetry.derive_interval_s`,
    `derive_after_points`) and a WAL checkpoint, on worker threads of this process."""
    telemetry = runtime.telemetry
    assert telemetry is not None
    telemetry.derive_if_due(time.time())  # the drain starts a period (the gateway ran before)
    while True:
        await asyncio.sleep(runtime.settings.telemetry_tick_s)
        await asyncio.to_thread(telemetry.derive_if_due, time.time())
        await asyncio.to_thread(telemetry.checkpoint)


async def finish_storing(runtime: Runtime, deriving: asyncio.Task[None]) -> None:
    """Stop `derive_every`, then move the rest into the series index and copy the WALs into
    the files: the ingest appends, `derive` and the checkpoint do the rest of the storing
    (`SqliteTelemetryStore`), so the drain's clock waits for them."""
    telemetry = runtime.telemetry
    assert telemetry is not None
    deriving.cancel()
    await asyncio.gather(deriving, return_exceptions=True)
    await asyncio.to_thread(telemetry.derive)
    await asyncio.to_thread(telemetry.checkpoint)


def close_runtime(runtime: Runtime) -> None:
    assert runtime.telemetry is not None
    runtime.telemetry.close()
    runtime.store.close()
    gc.unfreeze()


async def edge_only(
    runtime: Runtime, broker: MosquittoBroker, messages: list[tuple[str, bytes]]
) -> tuple[float, float, float]:
    """Seconds for the MQTT edge alone to drain the messages, publishing their Acks; its
    CPU µs/msg and the broker's."""
    mqtt = runtime.settings.mqtt.telemetry_connection()
    await register_session(broker, mqtt.session_id, f"guanjia/v1/{SITE}/+/telemetry")
    devices = f"{mqtt.session_id}-devices"
    await register_session(broker, devices, ACKS, v311=True)
    await asyncio.to_thread(publish_all, broker.host, broker.port, messages, mqtt.session_id)
    n, got = len(messages), 0
    done = asyncio.Event()

    clock = DrainClock(broker)

    async def acks_only(batch: Sequence[tuple[str, bytes]]) -> list[Outbound]:
        nonlocal got
        clock.first(len(batch))
        got += len(batch)
        if got >= n:
            done.set()
        committed = [
            Committed(SITE, topic.split("/")[3], msg_id=json.loads(payload)["msg_id"])
            for topic, payload in batch
        ]
        return [Outbound(t, p) for t, p in ack_messages(committed, time.time())]

    ingest = MqttIngest(mqtt, acks_only, filters=runtime.settings.mqtt.telemetry_filters)
    task = asyncio.create_task(ingest.run())
    async with asyncio.timeout(DRAIN_TIMEOUT_S):
        await done.wait()
    elapsed, cpu_us = clock.stop(n)
    acked = await collect_acks(broker, devices, n)  # the last Acks are on their way
    await asyncio.sleep(SETTLE_S)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await forget_session(broker, mqtt.session_id)
    assert acked == n, f"{acked} of {n} messages acknowledged to their devices"
    assert ingest.publish_failures == 0, f"{ingest.publish_failures} Ack publishes failed"
    return elapsed, cpu_us, clock.broker_us


async def gateway(
    runtime: Runtime,
    broker: MosquittoBroker,
    messages: list[tuple[str, bytes]],
    points: int,
    nodes: int,
) -> dict[str, float]:
    """Drain the parked messages through the gateway's telemetry session: seconds until
    every message is stored and acknowledged (`stored_s`), and until InfluxDB accepted every
    point (`delivered_s`; = `stored_s` without it); CPU µs/msg until both."""
    mqtt = runtime.settings.mqtt.telemetry_connection()
    await register_session(broker, mqtt.session_id, f"guanjia/v1/{SITE}/+/telemetry")
    devices = f"{mqtt.session_id}-devices"
    await register_session(broker, devices, ACKS, v311=True)
    await asyncio.to_thread(publish_all, broker.host, broker.port, messages, mqtt.session_id)
    n = len(messages)
    telemetry = runtime.telemetry
    assert telemetry is not None
    before = telemetry.sqlite.count()  # the history
    done = asyncio.Event()
    committed = 0

    clock = DrainClock(broker)

    async def counted(batch: Sequence[tuple[str, bytes]]) -> list[Outbound]:
        nonlocal committed
        receiver = ingest.process if isinstance(ingest, ReceiverIngest) else None
        clock.first(len(batch), [receiver.pid] if receiver and receiver.pid else [])
        out = await ingest_batch(runtime, batch)  # committed and stored when it returns
        committed += len(batch)
        if committed >= n:
            done.set()
        return out

    # Steady state: a node's profile is looked up once per REGISTRY_CACHE_S (500 nodes: 17
    # queries a second), not 500 queries inside a two-second drain.
    for i in range(nodes):
        telemetry.node(f"shed-{i}")
    filters = runtime.settings.mqtt.telemetry_filters
    ingest: MqttIngest | ReceiverIngest
    if runtime.settings.mqtt.telemetry_processes > 1:
        ingest = ReceiverIngest(mqtt, counted, filters=filters, name="bench-receiver")
    else:
        ingest = MqttIngest(mqtt, counted, filters=filters)
    gc_clock = GcClock()
    task = asyncio.create_task(ingest.run())
    deriving = asyncio.create_task(derive_every(runtime))
    async with asyncio.timeout(DRAIN_TIMEOUT_S):
        with gc_clock:
            await done.wait()
            await finish_storing(runtime, deriving)
            stored_s, _ = clock.stop(n)
            # The rate stops here: every message committed, stored and acknowledged. The CPU
            # goes on until InfluxDB accepted every point, so the writer thread's work (the
            # lines, the HTTP writes) is in the µs/msg. The wait is not the ingest's: the
            # batch in the writer's buffer when the drain ends waits for the flush interval
            # (+ jitter), as batching means; counting it in the rate swung the InfluxDB
            # row 2.5× by where the interval's timer fell (issue 9, 15:26).
            if telemetry.influx is not None:
                while telemetry.influx.written < n * points:  # noqa: ASYNC110 (another thread)
                    await asyncio.sleep(0.005)
            delivered_s, cpu_us = clock.stop(n)
    # Outside the clock: every message must have been acknowledged to its device, and no
    # Ack publish lost (the drain ends before the broker confirmed the last ones).
    acked = await collect_acks(broker, devices, n)
    await asyncio.sleep(SETTLE_S)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await forget_session(broker, mqtt.session_id)
    assert telemetry.sqlite.count() - before == n * points, telemetry.sqlite.count() - before
    assert acked == n, f"{acked} of {n} messages acknowledged to their devices"
    assert ingest.publish_failures == 0, f"{ingest.publish_failures} Ack publishes failed"
    return {
        "stored_s": stored_s,
        "delivered_s": delivered_s,
        "cpu_us": cpu_us,
        "broker_us": clock.broker_us,
        "gateway_us": clock.split_us[0],
        "receiver_us": sum(clock.split_us[1:]),
        "gc_us": gc_clock.seconds / n * 1e6,
        "dropped": float(telemetry.influx.dropped if telemetry.influx else 0),
    }
