"""The demo's simulated sensors: the shed's port heats until the gateway cuts it and then
cools; the smoke alarm opens a fire ticket. Pure model, then on a real broker and gateway."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from gateway.mqtt_settings import MqttSettings
from gateway.sla import TicketCategory
from gateway.store import Store
from gateway.telemetry.settings import TelemetrySettings
from guanjia.demo_sensors import AMBIENT_C, SHED_ID, SMOKE_ID, SensorSimulator, Shed, SmokeDetector
from tests.gateway.apphelpers import SITE, running_app, seed_users, settings_for
from tests.gateway.proc import wait_for
from tests.support.broker import MosquittoBroker


def test_shed_heats_while_on_and_cools_once_cut() -> None:
    shed = Shed(heating_after_s=5.0)
    shed.step(5.0)
    start = shed.temperature
    for _ in range(60):
        shed.step(1.0)
    assert shed.temperature == pytest.approx(start + 60 * 0.8)
    assert shed.states()["switch/port1_relay"] == "ON"
    shed.command(b"OFF")
    hot = shed.temperature
    for _ in range(120):
        shed.step(1.0)
    assert AMBIENT_C < shed.temperature < hot - 40
    assert shed.states()["sensor/port1_current"] == "0.00"
    assert shed.states()["switch/port1_relay"] == "OFF"
    shed.command(b"garbage")  # ignored, as a stock switch ignores it
    assert not shed.relay_on


def test_smoke_detector_alarms_after_its_delay() -> None:
    smoke = SmokeDetector(alarm_after_s=30)
    smoke.step(29)
    assert smoke.readings()["smoke_alarm"] == 0.0
    smoke.step(1)
    assert smoke.readings()["smoke_alarm"] == 1.0


@pytest.mark.mqtt
@pytest.mark.timeout(90)
def test_simulated_shed_is_cut_off_and_smoke_opens_a_fire_ticket(
    tmp_path: Path, mqtt_broker: MosquittoBroker
) -> None:
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    seed_users(db)
    store = Store(db)
    store.devices.upsert_device(SHED_ID, SITE, "charging")
    store.sensors.set_sensor_node(SHED_ID, "charging_monitor", esphome=True)
    store.devices.upsert_device(SMOKE_ID, SITE, "smoke")
    store.sensors.set_sensor_node(SMOKE_ID, "smoke_detector", esphome=False)
    mqtt = MqttSettings(
        host=mqtt_broker.host, port=mqtt_broker.port, client_id="gw-" + uuid.uuid4().hex[:8]
    )
    settings = settings_for(
        db, ingest_enabled=True, mqtt=mqtt, telemetry=TelemetrySettings(path=tmp_path / "t.db")
    )
    with running_app(settings) as client:
        wait_for(client.app.state.ingest.connected.is_set, 15, "MQTT")  # type: ignore[attr-defined]
        wait_for(client.app.state.telemetry_ingest.connected.is_set, 15, "MQTT")  # type: ignore[attr-defined]
        fast = Shed(heating_after_s=0.5, heating_c_per_s=15.0)  # 70 °C within seconds
        sim = SensorSimulator(
            mqtt_broker.host, mqtt_broker.port, SITE, tick_s=0.2, smoke_after_s=3.0, shed=fast
        )
        sim.start()
        try:

            def tickets(category: TicketCategory) -> list[object]:
                return list(store.tickets.list_tickets(categories=[category.value]).items)

            wait_for(lambda: bool(tickets(TicketCategory.CHARGING_HAZARD)), 30, "a charging ticket")
            wait_for(lambda: not sim.shed.relay_on, 15, "the cut-off to reach the shed")
            wait_for(lambda: bool(tickets(TicketCategory.FIRE_ALARM)), 30, "a fire ticket")
            [fire] = tickets(TicketCategory.FIRE_ALARM)
            assert fire.device_id == SMOKE_ID  # type: ignore[attr-defined]
            runtime = client.app.state.runtime  # type: ignore[attr-defined]
            # the relay came back off: the cut-off is confirmed, nothing left waiting
            cutoffs = runtime.telemetry.pipeline.cutoffs
            wait_for(lambda: not cutoffs.pending(), 15, "the cut-off confirmed")
            peak = sim.shed.temperature
            time.sleep(1.0)
            assert sim.shed.temperature < peak  # cooling down
        finally:
            sim.stop()
    store.close()
