"""The telemetry session of a replica, run only while it holds the telemetry lease
(`gateway.telemetry.lease`: one rule owner per telemetry subscription): in this process, or
with its MQTT edge in a receiver process (`mqtt.telemetry_processes = 2`,
`gateway.receiver_ingest`)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from fastapi import FastAPI

from gateway.ingest_loop import ingest_batch, refuse, supervise
from gateway.mqtt import MqttIngest, drop_session
from gateway.receiver_ingest import ReceiverIngest
from gateway.runtime import Runtime


def owned_readings(app: FastAPI, runtime: Runtime) -> Coroutine[Any, Any, None]:
    """The telemetry session, run only while this replica holds the telemetry lease
    (`gateway.telemetry.lease`: one rule owner per telemetry subscription)."""
    from gateway.telemetry.lease import unshared

    mqtt = runtime.settings.mqtt
    shared = [f for f in mqtt.telemetry_filters if f.startswith("$share/")]
    session = ReceiverIngest if mqtt.telemetry_processes > 1 else MqttIngest
    readings = session(
        mqtt.telemetry_connection(),
        lambda batch: ingest_batch(runtime, batch),
        lambda refused: refuse(runtime, refused),
        runtime.metrics.ack_publish_failures.inc,
        filters=unshared(mqtt.telemetry_filters),
        unsubscribe=shared,
    )
    app.state.telemetry_ingest = readings
    return _own_readings(runtime, readings)


async def _own_readings(runtime: Runtime, readings: MqttIngest | ReceiverIngest) -> None:
    from gateway.telemetry.lease import LeaseKeeper, lease_name, own_telemetry

    telemetry, connection = runtime.telemetry, readings.settings
    assert telemetry is not None
    name, ttl_s = lease_name(connection.sites), telemetry.settings.lease_s
    await own_telemetry(
        LeaseKeeper(runtime.store, name, connection.session_id, ttl_s),
        run_session=lambda: supervise(readings),
        end_session=lambda: drop_session(connection),
        reset=telemetry.reset,
    )
