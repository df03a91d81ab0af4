"""Simulated sensors over a real Mosquitto into a real gateway app: one node speaking the
contract's TelemetryBatch, two speaking ESPHome's topics → points in both stores (SQLite and a
real VictoriaMetrics), tickets, relay cut-offs; the relay's state closing the loop, and a
charger that ignores its cut-off escalating its ticket."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

import contract as c
from gateway.mqtt_settings import MqttSettings
from gateway.sla import TicketCategory
from gateway.store import Store, migrate
from gateway.telemetry.profiles import PROFILES_DIR
from gateway.telemetry.settings import TelemetrySettings
from gateway.telemetry.sqlite_store import SqliteTelemetryStore
from tests.gateway.apphelpers import running_app, settings_for
from tests.support.broker import MosquittoBroker
from tests.support.victoria import VictoriaMetrics

pytestmark = pytest.mark.mqtt


def wait_for(cond: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = cond()
        if found:
            return found
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


class Node:
    """A paho client publishing as a sensor and recording what it receives."""

    def __init__(self, broker: MosquittoBroker, name: str, subscribe: str) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=name)
        self.client.on_message = lambda _c, _u, m: self.received.append((m.topic, bytes(m.payload)))
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(subscribe, qos=1)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def profiles(tmp_path: Path) -> Path:
    """The shipped profiles, with a 1 s cut-off confirmation so the test is quick."""
    folder = tmp_path / "profiles"
    shutil.copytree(PROFILES_DIR, folder)
    charging = folder / "charging_monitor.yaml"
    text = charging.read_text(encoding="utf-8")
    charging.write_text(text.replace("confirm_within_s: 10", "confirm_within_s: 1"), "utf-8")
    return folder


@pytest.fixture
def nodes(mqtt_broker: MosquittoBroker, site_id: str) -> Iterator[dict[str, Node]]:
    made = {
        "shed-1": Node(mqtt_broker, f"{site_id}-shed-1", f"guanjia/v1/{site_id}/shed-1/cmd/+"),
        "shed-2": Node(
            mqtt_broker, f"{site_id}-shed-2", f"esphome/{site_id}/shed-2/switch/+/command"
        ),
        "smoke-1": Node(
            mqtt_broker, f"{site_id}-smoke-1", f"esphome/{site_id}/smoke-1/+/+/command"
        ),
    }
    yield made
    for node in made.values():
        node.close()


def tickets(store: Store, category: TicketCategory) -> list[Any]:
    return store.tickets.list_tickets(categories=[category.value], limit=100).items


@pytest.mark.timeout(120)
def test_sensors_over_the_broker_to_stores_tickets_and_relays(  # noqa: PLR0917 (fixtures)
    mqtt_broker: MosquittoBroker,
    victoria: VictoriaMetrics,
    nodes: dict[str, Node],
    profiles: Path,
    tmp_path: Path,
    site_id: str,
) -> None:
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    migrate(db)
    store = Store(db)
    for device, profile, esphome in (
        ("shed-1", "charging_monitor", False),
        ("shed-2", "charging_monitor", True),
        ("smoke-1", "smoke_detector", True),
    ):
        store.devices.upsert_device(device, site_id, "esphome" if esphome else "charging")
        store.sensors.set_sensor_node(device, profile, esphome=esphome)
    telemetry = TelemetrySettings(
        path=tmp_path / "telemetry.db",
        profiles_dir=profiles,
        influx_url=victoria.url,
        influx_org="guanjia",
        influx_bucket="telemetry",
        influx_token=SecretStr("t"),
        influx_flush_interval_s=0.1,
    )
    settings = settings_for(
        db,
        ingest_enabled=True,
        mqtt=MqttSettings(
            host=mqtt_broker.host,
            port=mqtt_broker.port,
            client_id=f"gw-{site_id}",
            sites=[site_id],
            reconnect_s=0.2,
        ),
        telemetry=telemetry,
        telemetry_tick_s=0.1,
    )
    now = time.time()
    with running_app(settings) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        wait_for(client.app.state.ingest.connected.is_set)  # type: ignore[attr-defined]
        shed1, shed2, smoke = nodes["shed-1"], nodes["shed-2"], nodes["smoke-1"]

        # 1. Our own node, through the contract: port 2 overheats.
        batch = c.TelemetryBatch(
            ts=now,
            site_id=site_id,
            device_id="shed-1",
            sensor_kind="charging_monitor",
            points=[
                c.TelemetryPoint(metric="port2_temperature", value=75.0, ts=now),
                c.TelemetryPoint(metric="port2_relay", value=1.0, ts=now),
                c.TelemetryPoint(metric="port1_temperature", value=31.0, ts=now),
            ],
        )
        shed1.send(str(c.telemetry_topic(site_id, "shed-1")), c.encode(batch))
        [(topic, payload)] = wait_for(lambda: shed1.received)
        command = c.decode(c.Command, payload)
        assert isinstance(command, c.Command)
        assert topic == f"guanjia/v1/{site_id}/shed-1/cmd/relay"
        assert command.args == {"port": 2, "state": "off"}
        [hazard] = wait_for(lambda: tickets(store, TicketCategory.CHARGING_HAZARD))
        assert (hazard.device_id, hazard.zone_id, hazard.tier) == (
            "shed-1",
            "port2_over_temperature",
            1,
        )
        # the relay reports off: the cut-off is confirmed, nothing escalates
        off = c.TelemetryBatch(
            ts=now + 1,
            site_id=site_id,
            device_id="shed-1",
            sensor_kind="charging_monitor",
            points=[c.TelemetryPoint(metric="relay", value=0.0, ts=now + 1, tags={"port": "2"})],
        )
        shed1.send(str(c.telemetry_topic(site_id, "shed-1")), c.encode(off))
        wait_for(lambda: not runtime.telemetry.pipeline.cutoffs.pending())

        # 2. A stock ESPHome node whose charger ignores the cut-off.
        shed2.send(f"esphome/{site_id}/shed-2/status", b"online")
        shed2.send(f"esphome/{site_id}/shed-2/sensor/port1_current/state", b"12.40")
        [(topic, payload)] = wait_for(lambda: shed2.received)
        assert (topic, payload) == (f"esphome/{site_id}/shed-2/switch/port1_relay/command", b"OFF")
        shed2.send(f"esphome/{site_id}/shed-2/switch/port1_relay/state", b"ON")
        escalated = wait_for(
            lambda: [
                t
                for t in tickets(store, TicketCategory.CHARGING_HAZARD)
                if t.device_id == "shed-2" and t.tier == 2
            ]
        )
        detail = store.tickets.get_ticket(escalated[0].id)
        [note] = [a for a in detail.audit if a.actor == "system:telemetry"]
        assert "not confirmed within 1 s" in str(note.detail)
        # the first shed, confirmed in time, stayed at tier 1
        assert store.tickets.get_ticket(hazard.id).tier == 1

        # 3. An ESPHome smoke detector alarms: a fire ticket at once.
        smoke.send(f"esphome/{site_id}/smoke-1/sensor/battery/state", b"87")
        smoke.send(f"esphome/{site_id}/smoke-1/binary_sensor/smoke_alarm/state", b"ON")
        [fire] = wait_for(lambda: tickets(store, TicketCategory.FIRE_ALARM))
        assert (fire.device_id, fire.zone_id) == ("smoke-1", "fire")
        # garbage on an ESPHome topic is dead-lettered, never a crash
        smoke.send(f"esphome/{site_id}/smoke-1/sensor/battery/state", b"full")
        wait_for(lambda: runtime.telemetry.dead_letters == 1)

        wait_for(lambda: runtime.telemetry.influx.written >= 8)
    embedded = SqliteTelemetryStore(tmp_path / "telemetry.db")
    latest = {x.series: x.value for x in embedded.latest("shed-2")}
    assert latest == {"port1_current": 12.4, "port1_relay": 1.0}
    assert {x.series for x in embedded.latest("shed-1")} == {
        "port2_temperature",
        "port2_relay",
        "port1_temperature",
    }
    assert [x.value for x in embedded.latest("smoke-1")] == [87.0, 1.0]
    embedded.close()

    def exported() -> dict[tuple[str, str, str | None], list[float]]:
        found: dict[tuple[str, str, str | None], list[float]] = {}
        for r in victoria.export():
            m = r["metric"]
            found.setdefault((m["device"], m["__name__"], m.get("port")), []).extend(r["values"])
        return found

    # VictoriaMetrics makes a new series searchable a moment after it accepted it.
    found = wait_for(lambda: (e := exported()) and len(e) == 7 and e)
    assert found[("shed-2", "telemetry_current", "1")] == [12.4]
    assert found[("shed-1", "telemetry_temperature", "2")] == [75.0]
    assert found[("shed-1", "telemetry_relay", "2")] == [1.0, 0.0]
    assert found[("smoke-1", "telemetry_smoke_alarm", None)] == [1.0]
    store.close()
