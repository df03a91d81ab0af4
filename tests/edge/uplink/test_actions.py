"""Local action sinks against real endpoints: an HTTP server thread and a Mosquitto broker."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import SecretStr

import contract as c
from edge.actions import (
    ActionRequest,
    FanOutActionSink,
    HttpActionSink,
    LoggingActionSink,
    MqttActionSink,
)
from edge.commands import CommandHandler
from edge.node_config import CommandSettings
from edge.outbox import Outbox
from edge.uplink import Uplink
from tests.conftest import DEVICE_PASSWORDS
from tests.edge.uplink.support import Subscriber, link_options, make_uplink, wait_until
from tests.support.broker import MosquittoBroker

REQUEST = ActionRequest(
    action="door_hold",
    camera_id="cam-lift",
    zone_id="cabin",
    event_id="ev-00000001",
    reason="two-wheeler in cabin",
    params={"duration_s": 30},
)


class Controller(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, object], str | None]]] = []
    status: ClassVar[int] = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, json.loads(body), self.headers.get("Authorization")))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output quiet


@pytest.fixture
def controller() -> Iterator[tuple[str, type[Controller]]]:
    class Handler(Controller):
        received: ClassVar[list[tuple[str, dict[str, object], str | None]]] = []

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/actions", Handler
    server.shutdown()
    server.server_close()


def test_http_sink_posts_action_json_with_token(controller: tuple[str, type[Controller]]) -> None:
    url, handler = controller
    sink = HttpActionSink(url, site_id="s1", device_id="lift-2", token="tok-123")
    sink.fire(REQUEST)
    sink.close()
    assert sink.sent == 1
    path, body, auth = handler.received[0]
    assert path == "/api/actions"
    assert auth == "Bearer tok-123"
    assert body["schema"] == "guanjia.local_action/1"
    assert body["action"] == "door_hold"
    assert body["params"] == {"duration_s": 30}
    assert body["device_id"] == "lift-2"


def test_http_sink_failures_are_counted_not_raised(
    controller: tuple[str, type[Controller]],
) -> None:
    url, handler = controller
    handler.status = 500
    sink = HttpActionSink(url, site_id="s1", device_id="d", timeout_s=1)
    sink.fire(REQUEST)
    down = HttpActionSink("http://127.0.0.1:9/", site_id="s1", device_id="d", timeout_s=1)
    down.fire(REQUEST)
    sink.close()
    down.close()
    assert (sink.sent, sink.failed) == (0, 1)
    assert (down.sent, down.failed) == (0, 1)


def test_http_sink_never_blocks_when_full() -> None:
    # A controller that never answers: the queue fills, fire() keeps returning.
    sink = HttpActionSink(
        "http://10.255.255.1/", site_id="s", device_id="d", queue_size=1, timeout_s=0.2
    )
    for _ in range(5):
        sink.fire(REQUEST)
    assert sink.failed >= 3
    sink.close()


def test_http_sink_rejects_other_schemes() -> None:
    with pytest.raises(ValueError, match="http"):
        HttpActionSink("file:///etc/passwd", site_id="s", device_id="d")


@pytest.mark.mqtt
def test_mqtt_sink_publishes_to_controller_topic_and_counts_offline(
    mqtt_broker: MosquittoBroker, site_id: str, tmp_path: Path
) -> None:
    topic = f"lift/{site_id}/cmd"
    sub = Subscriber(mqtt_broker, [topic]).start()
    uplink, outbox = make_uplink(mqtt_broker, site_id, tmp_path / "o.db")
    sink = MqttActionSink(uplink.link, topic, site_id=site_id, device_id="lift-2")
    sink.fire(REQUEST)  # not connected yet: counted, not queued for later
    assert sink.failed == 1
    uplink.start()
    wait_until(lambda: uplink.link.connected, 10, "connected")
    fan = FanOutActionSink([LoggingActionSink(), sink])
    fan.fire(REQUEST)
    wait_until(lambda: len(sub.messages) == 1, 5, "action on the controller topic")
    uplink.stop()
    outbox.close()
    sub.stop()
    body = json.loads(sub.messages[0].payload)
    assert body["action"] == "door_hold"
    assert body["site_id"] == site_id
    assert sink.sent == 1


@pytest.mark.mqtt
def test_mqtt_action_the_acl_refuses_is_failed_with_the_reason(
    mqtt_auth_broker: MosquittoBroker, site_id: str, tmp_path: Path
) -> None:
    """Finding 15: the broker ACL refuses the controller topic; the node must say so."""
    topic = f"lift/{site_id}/lift2/cmd"  # outside the device's prefix: never granted here
    outbox = Outbox(tmp_path / "o.db")
    options = replace(
        link_options(mqtt_auth_broker, site_id, device_id="device-a"),
        username="device-a",
        password=SecretStr(DEVICE_PASSWORDS["device-a"]),
        subscriptions=(c.subscription(c.Channel.CMD, site_id=site_id, device_id="device-a"),),
    )
    uplink = Uplink(options, outbox)
    sink = MqttActionSink(uplink.link, topic, site_id=site_id, device_id="device-a")
    handler = CommandHandler(
        site_id=site_id,
        device_id="device-a",
        settings=CommandSettings(),
        results=uplink,
        actions=sink,
        apply_config=lambda runtime: None,
        ping_detail=dict,
    )
    uplink.start()
    try:
        wait_until(lambda: uplink.link.connected, 10, "connected with device-a's password")
        command = c.Command(
            ts=time.time(),
            site_id=site_id,
            device_id="device-a",
            command_id="cmd-door-hold-1",
            name="actuate",
            args={"action": "door_hold", "duration_s": 30},
            issued_by="operator:li.wei",
        )
        result = handler.handle(
            str(c.command_topic(site_id, "device-a", "actuate")), c.encode(command), time.time()
        )
    finally:
        uplink.stop()
        outbox.close()
    assert result is not None
    assert result.status is c.CommandStatus.ERROR, result
    assert result.reason is not None
    assert "refused" in result.reason
    assert "Not authorized" in result.reason
    assert topic in result.reason
    assert (sink.sent, sink.failed) == (0, 1)
