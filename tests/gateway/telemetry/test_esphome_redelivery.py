"""An ESPHome state is stored once however often the broker delivers it (ESPHome has no
message id), against a real Mosquitto:

- redelivered after a gateway died between writing the points and acknowledging the
  message to the broker (the QoS 1 message comes again to the restarted session);
- replayed as a retained message when the telemetry session (MQTT 3.1.1) subscribes again;

while a new reading with the same value a reporting interval later is stored (the store
unit test below)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.ingest_loop import ingest_batch
from gateway.main import build_runtime
from gateway.mqtt import MqttIngest, Outbound
from gateway.mqtt_settings import MqttSettings
from gateway.runtime import Runtime
from gateway.store import migrate
from gateway.telemetry.points import Point
from gateway.telemetry.settings import TelemetrySettings
from gateway.telemetry.sqlite_store import SqliteTelemetryStore
from tests.gateway.apphelpers import settings_for
from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.mqtt

Batch = Sequence[tuple[str, bytes]]


def _publish(broker: MosquittoBroker, topic: str, payload: bytes, *, retain: bool) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"esp-pub-{topic[-20:]}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


def _runtime(sqlite_url: str, path: Path, broker: MosquittoBroker, site_id: str) -> Runtime:
    mqtt = MqttSettings(
        host=broker.host, port=broker.port, client_id=f"gw-{site_id}", sites=[site_id]
    )
    settings = settings_for(sqlite_url, mqtt=mqtt, telemetry=TelemetrySettings(path=path))
    runtime = build_runtime(settings)
    runtime.store.devices.upsert_device("shed-2", site_id, "esphome")
    runtime.store.sensors.set_sensor_node("shed-2", "charging_monitor", esphome=True)
    return runtime


async def _session(
    runtime: Runtime,
    *,
    die_after_store: bool,
    seen: list[Batch],
    subscribed: asyncio.Event | None = None,
) -> None:
    """Run the telemetry session until a batch was applied; with `die_after_store`, the
    process dies after the points are written and before the broker learns of it."""
    mqtt = runtime.settings.mqtt
    done = asyncio.Event()

    async def on_batch(batch: Batch) -> list[Outbound]:
        out = await ingest_batch(runtime, batch)
        seen.append(batch)
        done.set()
        if die_after_store:
            await asyncio.Event().wait()  # cancelled here: no PUBACK goes to the broker
        return out

    ingest = MqttIngest(mqtt.telemetry_connection(), on_batch, filters=mqtt.telemetry_filters)
    task = asyncio.create_task(ingest.run())
    try:
        await asyncio.wait_for(ingest.connected.wait(), 20)
        if subscribed is not None:
            subscribed.set()
        await asyncio.wait_for(done.wait(), 20)
        await asyncio.sleep(0.3)  # the broker acknowledgement (when not dying) goes out
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _stored(path: Path) -> int:
    store = SqliteTelemetryStore(path)
    try:
        return store.count()
    finally:
        store.close()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("retained", [False, True], ids=["redelivered", "retained-replay"])
def test_an_esphome_state_delivered_twice_is_stored_once(
    mqtt_broker: MosquittoBroker, site_id: str, sqlite_url: str, tmp_path: Path, retained: bool
) -> None:
    migrate(sqlite_url)
    path = tmp_path / "t.db"
    topic = f"esphome/{site_id}/shed-2/sensor/port1_temperature/state"
    first: list[Batch] = []
    again: list[Batch] = []

    async def scenario() -> None:
        runtime = _runtime(sqlite_url, path, mqtt_broker, site_id)
        # Register the persistent session, then deliver the state to it.
        subscribed = asyncio.Event()
        registering = asyncio.create_task(
            _session(runtime, die_after_store=not retained, seen=first, subscribed=subscribed)
        )
        await asyncio.wait_for(subscribed.wait(), 20)
        _publish(mqtt_broker, topic, b"31.5", retain=retained)
        await registering
        assert runtime.telemetry is not None
        runtime.telemetry.close()
        runtime.store.close()
        # A new gateway process on the same files and session: the broker sends it again.
        runtime = _runtime(sqlite_url, path, mqtt_broker, site_id)
        await _session(runtime, die_after_store=False, seen=again)
        assert runtime.telemetry is not None
        runtime.telemetry.close()
        runtime.store.close()

    asyncio.run(scenario())
    assert [list(b) for b in first] == [[(topic, b"31.5")]]
    assert [list(b) for b in again] == [[(topic, b"31.5")]]  # really delivered twice
    assert _stored(path) == 1


def test_a_repeated_state_is_skipped_only_within_its_window(tmp_path: Path) -> None:
    store = SqliteTelemetryStore(tmp_path / "t.db")
    t0 = 1_800_000_000.0

    def state(value: float, ts: float) -> tuple[Point, float]:
        return Point("s", "shed-2", "port1_temperature", value, ts), 8.0

    assert len(store.write_messages([], states=[state(31.5, t0)])) == 1
    assert store.write_messages([], states=[state(31.5, t0 + 2), state(31.5, t0 + 7)]) == []
    # A new reading of the same value a reporting interval later, and a changed value.
    assert len(store.write_messages([], states=[state(31.5, t0 + 10)])) == 1
    assert len(store.write_messages([], states=[state(32.0, t0 + 11)])) == 1
    assert len(store.write_messages([], states=[state(31.5, t0 + 12)])) == 1
    assert store.count() == 4
    store.close()


def test_the_telemetry_session_speaks_mqtt_3_1_1_unless_its_subscriptions_are_shared() -> None:
    assert MqttSettings().telemetry_connection().protocol == "3.1.1"
    assert MqttSettings(telemetry_protocol="5").telemetry_connection().protocol == "5"
    shared = MqttSettings(share_group="g").telemetry_connection()
    assert shared.protocol == "5"  # shared subscriptions need MQTT 5


@pytest.mark.parametrize("derived", [False, True])
def test_a_new_process_compares_a_state_with_the_newest_stored_not_yet_or_already_derived(
    tmp_path: Path, derived: bool
) -> None:
    """A gateway restarted knows no series: the newest state is read from the file, from
    `incoming` (not yet derived) or from `points` (derived), whichever is newer."""
    path = tmp_path / "t.db"
    t0 = 1_800_000_000.0

    def state(value: float, ts: float) -> tuple[Point, float]:
        return Point("s", "shed-2", "port1_temperature", value, ts), 8.0

    first = SqliteTelemetryStore(path)
    assert len(first.write_messages([], states=[state(30.0, t0 - 60), state(31.5, t0)])) == 2
    if derived:
        assert first.derive() == 2
    first.close()
    again = SqliteTelemetryStore(path)  # the same state delivered again, within its window
    assert again.write_messages([], states=[state(31.5, t0 + 2)]) == []
    assert len(again.write_messages([], states=[state(30.0, t0 + 3)])) == 1  # a change
    assert again.count() == 3
    again.close()
