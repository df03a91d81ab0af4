"""One rule owner among replicas, for real: two `guanjia gateway run` processes on one
database (SQLite file, PostgreSQL) and a real Mosquitto. ESPHome topics are plain
subscriptions, so without the telemetry lease both replicas would run the rules on the same
over-temperature and send two relay OFF commands. With it, exactly one does; killing its
process (-9) hands the lease and the rules to the other within the lease time, which then
cuts off the next hot port once."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.store import Store
from gateway.telemetry import esphome
from tests.gateway.proc import GatewayProcess, start_gateway, wait_for
from tests.support.broker import MosquittoBroker

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

LEASE_S = 3.0
DEVICE = "shed-1"


class Node:
    """A stock ESPHome node's side: retained states out, relay commands counted in."""

    def __init__(self, broker: MosquittoBroker, site_id: str) -> None:
        self.site_id = site_id
        self.commands: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"node-{site_id}")
        self.client.on_message = self._received
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        topic = f"{esphome.prefix(site_id, DEVICE)}/switch/+/command"
        self.client.subscribe(topic, qos=1)
        time.sleep(0.5)  # SUBACK before anything can be commanded

    def _received(self, _c: object, _u: object, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.commands.append((message.topic, bytes(message.payload)))

    def offs(self, port: int) -> int:
        topic = esphome.relay_command_topic(self.site_id, DEVICE, f"port{port}_relay")
        with self._lock:
            return sum(1 for t, p in self.commands if t == topic and p == b"OFF")

    def hot(self, port: int) -> None:
        # ESPHome retains its states: whichever replica subscribes later still gets it.
        topic = f"{esphome.prefix(self.site_id, DEVICE)}/sensor/port{port}_temperature/state"
        self.client.publish(topic, b"85.0", qos=1, retain=True).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.mark.timeout(240)
def test_one_replica_runs_the_rules_and_a_killed_holder_hands_over(
    tmp_path: Path, db_url: str, mqtt_broker: MosquittoBroker, site_id: str
) -> None:
    store = Store(db_url)
    store.devices.upsert_device(DEVICE, site_id, "esphome")
    store.sensors.set_sensor_node(DEVICE, "charging_monitor", esphome=True)
    tag = uuid.uuid4().hex[:6]
    gateways: dict[str, GatewayProcess] = {}
    node = Node(mqtt_broker, site_id)
    try:
        for name in ("a", "b"):
            client_id = f"gw-{name}-{tag}"
            gateways[f"{client_id}-telemetry"] = start_gateway(
                tmp_path,
                db_url,
                mqtt_broker,
                client_id,
                MQTT__SITES=[site_id],
                TELEMETRY_TICK_S=0.5,
                TELEMETRY__LEASE_S=LEASE_S,
                TELEMETRY__PATH=str(tmp_path / f"telemetry-{name}.db"),
            )
        for gateway in gateways.values():
            gateway.wait_ready(90)
        lease = f"telemetry:{site_id}"

        def holder() -> str | None:
            row = store.leases.lease(lease)
            return row.holder if row is not None and row.expires_at > time.time() else None

        wait_for(lambda: holder() is not None, 30, "a replica holding the telemetry lease")
        first = holder()
        assert first in gateways

        node.hot(1)
        wait_for(lambda: node.offs(1) >= 1, 30, "a relay cut-off of port 1")
        time.sleep(LEASE_S * 2)  # time for a second replica's duplicate, if it ran the rules
        assert node.offs(1) == 1, node.commands
        assert holder() == first

        killed_at = time.time()
        gateways[first].kill()
        wait_for(lambda: holder() not in (None, first), LEASE_S * 10, "the other replica")
        took = time.time() - killed_at
        print(f"lease {LEASE_S:g} s: the other replica held it {took:.1f} s after the kill")
        assert took < LEASE_S * 4 / 3 + 3.0  # expiry + one claim period + a loaded machine

        node.hot(2)
        wait_for(lambda: node.offs(2) >= 1, 30, "the new holder's cut-off of port 2")
        time.sleep(LEASE_S)
        assert node.offs(2) == 1, node.commands
    finally:
        for gateway in gateways.values():
            gateway.stop()
        node.close()
        store.close()
