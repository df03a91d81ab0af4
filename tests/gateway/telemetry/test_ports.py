"""Switching a cut charging port on again: a person's action, site-scoped, refused while the
port's condition is open, audited on the command and the port's ticket, published on the
real broker as ESPHome's ``ON``."""

from __future__ import annotations

import queue
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.auth import Role, hash_password
from gateway.mqtt_settings import MqttSettings
from gateway.sla import TicketCategory
from gateway.store import Store
from gateway.telemetry.settings import TelemetrySettings
from tests.gateway.apphelpers import (
    OTHER_SITE,
    PASSWORD,
    SITE,
    running_app,
    seed_users,
    settings_for,
    token,
)
from tests.gateway.proc import wait_for
from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.mqtt


def _listen(broker: MosquittoBroker, topic: str) -> tuple[paho.Client, queue.Queue[bytes]]:
    got: queue.Queue[bytes] = queue.Queue()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"listen-{uuid.uuid4().hex[:8]}")
    client.on_message = lambda _c, _u, m: got.put(bytes(m.payload))
    client.connect(broker.host, broker.port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    return client, got


@pytest.mark.timeout(60)
def test_port_enable_refused_while_hot_then_audited_and_sent(
    tmp_path: Path, mqtt_broker: MosquittoBroker
) -> None:
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    seed_users(db)
    store = Store(db)
    store.devices.upsert_device("shed-1", SITE, "charging")
    store.sensors.set_sensor_node("shed-1", "charging_monitor", esphome=True)
    store.devices.upsert_device("cam-1", SITE, "camera")
    store.users.create_user("sup2", hash_password(PASSWORD), Role.SUPERVISOR, [OTHER_SITE])
    mqtt = MqttSettings(
        host=mqtt_broker.host, port=mqtt_broker.port, client_id="gw-" + uuid.uuid4().hex[:8]
    )
    settings = settings_for(
        db,
        ingest_enabled=True,
        mqtt=mqtt,
        telemetry=TelemetrySettings(path=tmp_path / "t.db"),
    )
    listener, commands = _listen(mqtt_broker, f"esphome/{SITE}/shed-1/switch/+/command")
    state = f"esphome/{SITE}/shed-1/sensor/port1_temperature/state"
    with running_app(settings) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        wait_for(client.app.state.ingest.connected.is_set, 15, "MQTT")  # type: ignore[attr-defined]
        sup, op, other = token(client, "sup"), token(client, "op"), token(client, "sup2")
        url = "/api/devices/shed-1/ports/1/enable"
        body = {"reason": "socket replaced after inspection"}
        runtime.telemetry.handle([(state, b"80")], time.time())  # hot: cut off, ticket open
        assert commands.get(timeout=10) == b"OFF"  # the gateway's cut-off
        [hazard] = store.tickets.list_tickets(
            categories=[TicketCategory.CHARGING_HAZARD.value]
        ).items
        refused = client.post(url, headers=sup, json=body)
        assert refused.status_code == 409, refused.text
        assert "port1_over_temperature is still active" in refused.text
        # roles and scope: an operator may not, another site's supervisor sees nothing
        assert client.post(url, headers=op, json=body).status_code == 403
        assert client.post(url, headers=other, json=body).status_code == 404
        # bad requests: no relay on a camera, no port 9, a reason is required
        assert (
            client.post("/api/devices/cam-1/ports/1/enable", headers=sup, json=body).status_code
            == 422
        )
        assert (
            client.post("/api/devices/shed-1/ports/9/enable", headers=sup, json=body).status_code
            == 422
        )
        assert client.post(url, headers=sup, json={"reason": ""}).status_code == 422
        runtime.telemetry.handle([(state, b"40")], time.time())  # cooled down: cleared
        done = client.post(url, headers=sup, json=body)
        assert done.status_code == 202, done.text
        assert done.json()["issued_by"] == "operator:sup"
        assert commands.get(timeout=10) == b"ON"  # the person's
        audit = client.get("/api/devices/shed-1/commands", headers=sup).json()
        assert [(a["name"], a["args"]["state"], a["state"]) for a in audit] == [
            ("relay", "on", "sent")
        ]
        assert audit[0]["args"]["reason"] == "socket replaced after inspection"
        lines = store.tickets.get_ticket(hazard.id).audit
        assert [
            (x.actor, x.action, x.detail["port"]) for x in lines if x.action == "port_enabled"
        ] == [("sup", "port_enabled", 1)]
    listener.loop_stop()
    listener.disconnect()
    store.close()
