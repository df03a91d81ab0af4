"""The command route (issue 8, finding 16): an authorised, audited REST route is the way a
person actuates a node. A real Mosquitto, the app's real MQTT connection, and a real
subscriber standing in for the device's `cmd/+` subscription.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

import contract as c
from edge.actions import LoggingActionSink
from edge.commands import CommandHandler
from edge.link_options import LinkOptions
from edge.node_config import CommandSettings
from edge.outbox import Outbox
from edge.uplink import Uplink
from gateway.main import create_app
from gateway.mqtt_settings import MqttSettings
from gateway.store import Store
from tests.gateway.apphelpers import OTHER_SITE, SITE, seed_users, settings_for, token
from tests.gateway.factories import seed_site
from tests.gateway.proc import Publisher, wait_for
from tests.support.broker import MosquittoBroker

ACTUATE = {
    "name": "actuate",
    "args": {"action": "voice_warning", "text": "电动车禁止进入电梯", "duration_s": 10},
    "expires_in_s": 30,
}


@dataclass
class DeviceSubscriber:
    """What a node subscribed to `guanjia/v1/+/+/cmd/+` receives."""

    broker: MosquittoBroker
    received: list[tuple[str, bytes]] = field(default_factory=list)
    subscribed: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="sub-" + uuid.uuid4().hex)
        self.client.on_message = lambda _c, _u, m: self.received.append((m.topic, bytes(m.payload)))
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.connect(self.broker.host, self.broker.port)
        self.client.subscribe(str(c.subscription(c.Channel.CMD)), qos=1)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def broker(broker_factory: Callable[..., MosquittoBroker]) -> MosquittoBroker:
    return broker_factory()


@pytest.fixture
def app_client(db_url: str, broker: MosquittoBroker) -> Iterator[TestClient]:
    seed_users(db_url)
    store = Store(db_url)
    seed_site(store, SITE, ("cam-a",))
    seed_site(store, OTHER_SITE, ("cam-b",))
    store.close()
    mqtt = MqttSettings(
        host=broker.host, port=broker.port, client_id="gw-cmd-" + uuid.uuid4().hex[:8]
    )
    settings = settings_for(db_url, ingest_enabled=True, mqtt=mqtt)
    with TestClient(create_app(settings)) as client:
        ingest = client.app.state.ingest  # type: ignore[attr-defined]
        wait_for(ingest.connected.is_set, 15, "the gateway's MQTT connection")
        yield client


def _node_answer(tmp_path: Path, topic: str, payload: bytes) -> tuple[c.CommandResult, list[str]]:
    """What an edge node with the default command settings makes of the received command:
    its CommandHandler on a real outbox (behind an unstarted Uplink) and a logging sink."""
    outbox = Outbox(tmp_path / "node-outbox.db")
    try:
        options = LinkOptions(
            host="127.0.0.1", port=1, site_id=SITE, device_id="cam-a", software_version="0.1"
        )
        actions = LoggingActionSink()
        handler = CommandHandler(
            site_id=SITE,
            device_id="cam-a",
            settings=CommandSettings(),  # allowed_issuers: ["gateway", "operator:"]
            results=Uplink(options, outbox),
            actions=actions,
            apply_config=lambda _config: None,
            ping_detail=dict,
        )
        result = handler.handle(topic, payload, time.time())
        assert result is not None
        return result, [request.reason for request in actions.fired]
    finally:
        outbox.close()


def test_command_is_published_with_the_callers_identity_and_audited(
    app_client: TestClient, broker: MosquittoBroker, tmp_path: Path
) -> None:
    device = DeviceSubscriber(broker)
    try:
        sup = token(app_client, "sup")
        # The issuer is never taken from the body.
        forged = dict(ACTUATE, issued_by="gateway")
        r = app_client.post("/api/devices/cam-a/commands", headers=sup, json=forged)
        assert r.status_code == 422, r.text
        before = time.time()
        r = app_client.post("/api/devices/cam-a/commands", headers=sup, json=ACTUATE)
        assert r.status_code == 202, r.text
        sent = r.json()
        assert sent["issued_by"] == "operator:sup"
        assert sent["state"] == "sent"
        wait_for(lambda: len(device.received) == 1, 10, "the command at the device")
        topic, payload = device.received[0]
        assert topic == str(c.command_topic(SITE, "cam-a", "actuate"))
        _topic, command = c.decode_for_topic(topic, payload)
        assert isinstance(command, c.Command)
        assert (command.site_id, command.device_id) == (SITE, "cam-a")
        assert command.command_id == sent["command_id"]
        assert command.issued_by == "operator:sup"
        assert command.args == ACTUATE["args"]
        assert command.expires_at is not None
        assert before + 30 <= command.expires_at <= time.time() + 30
        # A node with default settings accepts the gateway-bound issuer and acts on it.
        result, reasons = _node_answer(tmp_path, topic, payload)
        assert (result.command_id, result.status) == (sent["command_id"], c.CommandStatus.OK)
        assert reasons == [f"command {sent['command_id']} from operator:sup"]
        # The audit row: who sent what to which device, and that it left.
        log = app_client.get("/api/devices/cam-a/commands", headers=sup).json()
        assert [(e["command_id"], e["issued_by"], e["name"], e["state"]) for e in log] == [
            (sent["command_id"], "operator:sup", "actuate", "sent")
        ]
        assert log[0]["args"] == ACTUATE["args"]
    finally:
        device.close()


def test_the_devices_command_result_is_recorded_on_the_audit_row(
    app_client: TestClient, broker: MosquittoBroker, tmp_path: Path
) -> None:
    """The node's CommandResult comes back through ingest and lands on the command's audit
    row (keyed by site, device and command id: another device naming the same command id
    changes nothing), so `GET /api/devices/{id}/commands` shows the outcome."""
    device = DeviceSubscriber(broker)
    try:
        sup = token(app_client, "sup")
        r = app_client.post("/api/devices/cam-a/commands", headers=sup, json=ACTUATE)
        assert r.status_code == 202, r.text
        sent = r.json()
        wait_for(lambda: len(device.received) == 1, 10, "the command at the device")
        result, _reasons = _node_answer(tmp_path, *device.received[0])
    finally:
        device.close()
    forged = c.CommandResult(
        msg_id=c.new_msg_id(),
        ts=time.time(),
        site_id=OTHER_SITE,
        device_id="cam-b",
        command_id=sent["command_id"],
        name="actuate",
        status=c.CommandStatus.ERROR,
        reason="forged by another device",
    )
    publisher = Publisher(broker, "pub-results-" + uuid.uuid4().hex[:8])
    publisher.send(forged, str(c.command_result_topic(OTHER_SITE, "cam-b")))
    publisher.send(result, str(c.command_result_topic(SITE, "cam-a")))
    publisher.close()

    def answered() -> bool | object:
        log = app_client.get("/api/devices/cam-a/commands", headers=sup).json()
        return log[0]["result_status"] is not None or log

    wait_for(answered, 15, "the result on the audit row")
    log = app_client.get("/api/devices/cam-a/commands", headers=sup).json()
    assert [(e["command_id"], e["state"], e["result_status"]) for e in log] == [
        (sent["command_id"], "sent", "ok")
    ]
    assert log[0]["result_reason"] is None
    assert log[0]["result_at"] is not None


def test_command_route_checks_role_and_site(
    app_client: TestClient, broker: MosquittoBroker
) -> None:
    device = DeviceSubscriber(broker)
    try:
        for user in ("op", "worker"):
            r = app_client.post(
                "/api/devices/cam-a/commands", headers=token(app_client, user), json=ACTUATE
            )
            assert r.status_code == 403, (user, r.text)
        sup = token(app_client, "sup")  # site-1 only
        r = app_client.post("/api/devices/cam-b/commands", headers=sup, json=ACTUATE)
        assert r.status_code == 404, r.text
        assert app_client.get("/api/devices/cam-b/commands", headers=sup).status_code == 404
        r = app_client.post("/api/devices/cam-x/commands", headers=sup, json=ACTUATE)
        assert r.status_code == 404, r.text
        bad_name = dict(ACTUATE, name="door/hold")
        r = app_client.post("/api/devices/cam-a/commands", headers=sup, json=bad_name)
        assert r.status_code == 422, r.text
        # A command that did go out proves the subscriber would have seen the refused ones.
        admin = token(app_client, "admin")
        r = app_client.post("/api/devices/cam-b/commands", headers=admin, json=ACTUATE)
        assert r.status_code == 202, r.text
        wait_for(lambda: len(device.received) >= 1, 10, "the admin's command")
        assert [t for t, _ in device.received] == [
            str(c.command_topic(OTHER_SITE, "cam-b", "actuate"))
        ]
        assert app_client.get("/api/devices/cam-a/commands", headers=admin).json() == []
    finally:
        device.close()


def test_command_while_the_broker_is_down_answers_503_and_is_audited(
    app_client: TestClient, broker: MosquittoBroker
) -> None:
    ingest = app_client.app.state.ingest  # type: ignore[attr-defined]
    broker.stop()
    wait_for(lambda: not ingest.connected.is_set(), 15, "the gateway to notice the broker left")
    sup = token(app_client, "sup")
    r = app_client.post("/api/devices/cam-a/commands", headers=sup, json=ACTUATE)
    assert r.status_code == 503, r.text
    log = app_client.get("/api/devices/cam-a/commands", headers=sup).json()
    assert [(e["issued_by"], e["state"]) for e in log] == [("operator:sup", "unavailable")]


def test_command_without_mqtt_answers_503(db_url: str) -> None:
    seed_users(db_url)
    store = Store(db_url)
    seed_site(store, SITE, ("cam-a",))
    store.close()
    with TestClient(create_app(settings_for(db_url))) as client:
        r = client.post("/api/devices/cam-a/commands", headers=token(client, "admin"), json=ACTUATE)
        assert r.status_code == 503, r.text
