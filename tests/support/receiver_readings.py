"""Readings for the receiver-process tests (tests/gateway/test_receiver_ingest.py): a gateway
runtime with `mqtt.telemetry_processes = 2` and registered charging monitors, the
TelemetryBatches they publish, and a stand-alone gateway process to SIGKILL.

As a program (``python -m tests.support.receiver_readings TMP HOST PORT SITE``) it is that
gateway process: the telemetry session through a `ReceiverIngest` under `supervise`, as
`gateway.readings_owner` runs it, printing ``receiver <pid>`` each time a receiver process is
connected; SIGTERM ends it (and its receiver) cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path

from pydantic import SecretStr

import contract as c
from gateway.config import GatewaySettings
from gateway.ingest_loop import ingest_batch, supervise
from gateway.main import build_runtime
from gateway.mqtt_settings import MqttSettings
from gateway.receiver_ingest import ReceiverIngest
from gateway.runtime import Runtime
from gateway.store import migrate
from gateway.telemetry.settings import TelemetrySettings

NODES = 10
POINTS = 2
T0 = time.time() - 3600


def readings(site: str, n: int, tag: str) -> list[tuple[str, bytes]]:
    """`n` TelemetryBatches (POINTS readings each) of the NODES registered nodes, each node
    every 10 s, each with its own msg_id (as benchmarks/telemetry/workload.py builds them)."""
    out = []
    for i in range(n):
        device = f"shed-{i % NODES}"
        ts = T0 + (i // NODES) * 10.0
        points = [
            c.TelemetryPoint(metric=f"port1_{metric}", value=value + (i % 7) * 0.1, ts=ts)
            for metric, value in [("voltage", 220.0), ("current", 2.0)][:POINTS]
        ]
        batch = c.TelemetryBatch(
            ts=ts,
            site_id=site,
            device_id=device,
            sensor_kind="charging_monitor",
            points=points,
            msg_id=f"tb-{tag}-{i:06d}",
        )
        out.append((str(c.telemetry_topic(site, device)), c.encode(batch)))
    return out


def msg_ids(messages: list[tuple[str, bytes]]) -> set[str]:
    return {json.loads(payload)["msg_id"] for _, payload in messages}


def make_runtime(tmp: Path, host: str, port: int, site: str) -> Runtime:
    """A gateway runtime with `mqtt.telemetry_processes = 2`, SQLite in `tmp`, and NODES
    registered charging monitors (as benchmarks/telemetry/drains.make_runtime). Made again
    on the same `tmp`, it opens the same stores."""
    db = f"sqlite:///{tmp / 'gateway.db'}"
    migrate(db)
    settings = GatewaySettings(
        database_url=db,
        jwt_secret=SecretStr("test-secret-0123456789abcdef-0123456789"),
        mqtt=MqttSettings(
            host=host,
            port=port,
            client_id=f"gw-{site}",
            sites=[site],
            reconnect_s=0.2,
            telemetry_processes=2,
        ),
        telemetry=TelemetrySettings(path=tmp / "telemetry.db"),
    )
    runtime = build_runtime(settings)
    for i in range(NODES):
        runtime.store.devices.upsert_device(f"shed-{i}", site, "charging")
        runtime.store.sensors.set_sensor_node(f"shed-{i}", "charging_monitor", esphome=False)
    return runtime


def close_runtime(runtime: Runtime) -> None:
    assert runtime.telemetry is not None
    runtime.telemetry.close()
    runtime.store.close()


def receiver_ingest(runtime: Runtime) -> ReceiverIngest:
    """The telemetry session as `gateway.readings_owner` makes it with two processes."""
    mqtt = runtime.settings.mqtt
    assert mqtt.telemetry_processes == 2

    return ReceiverIngest(
        mqtt.telemetry_connection(),
        lambda batch: ingest_batch(runtime, batch),
        filters=mqtt.telemetry_filters,
        name=f"test-receiver-{mqtt.session_id}",
    )


async def _serve(runtime: Runtime) -> None:
    ingest = receiver_ingest(runtime)
    task = asyncio.create_task(supervise(ingest, 0.2))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    reported = None
    try:
        while not task.done():
            process = ingest.process
            if ingest.connected.is_set() and process is not None and process.pid != reported:
                reported = process.pid
                print(f"receiver {reported}", flush=True)
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def main(argv: list[str]) -> None:
    tmp, host, port, site = Path(argv[0]), argv[1], int(argv[2]), argv[3]
    runtime = make_runtime(tmp, host, port, site)
    try:
        asyncio.run(_serve(runtime))
    finally:
        close_runtime(runtime)


if __name__ == "__main__":
    main(sys.argv[1:])
