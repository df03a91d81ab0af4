"""Outbox → MQTT delivery against a real Mosquitto: order, outages, kill -9, LWT, credentials."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

import contract as c
from edge.outbox import Outbox
from edge.uplink import SnapshotMismatchError, Uplink
from tests.conftest import DEVICE_PASSWORDS, GATEWAY_PASSWORD
from tests.edge.uplink.support import (
    DEVICE,
    Subscriber,
    link_options,
    make_event,
    make_uplink,
    wait_until,
)
from tests.support.ack_gateway import AckingGateway
from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.mqtt

REPO = Path(__file__).resolve().parents[3]


def _events_by_id(sub: Subscriber) -> dict[str, list[dict[str, object]]]:
    seen: dict[str, list[dict[str, object]]] = defaultdict(list)
    for body in sub.json("event"):
        seen[str(body["event_id"])].append(body)
    return seen


@pytest.fixture
def running() -> Iterator[list[Callable[[], None]]]:
    """Stop callbacks run at teardown, so a failing test never leaks threads or processes."""
    stops: list[Callable[[], None]] = []
    yield stops
    for stop in reversed(stops):
        stop()


def test_uplink_sends_online_then_snapshot_before_event(
    mqtt_broker: MosquittoBroker, site_id: str, tmp_path: Path, running: list[Callable[[], None]]
) -> None:
    sub = Subscriber(mqtt_broker, [c.subscription(site_id=site_id)]).start()
    running.append(sub.stop)
    gateway = AckingGateway(mqtt_broker, site_id).start()
    running.append(gateway.stop)
    uplink, outbox = make_uplink(mqtt_broker, site_id, tmp_path / "o.db")
    uplink.start()
    running.append(outbox.close)
    running.append(uplink.stop)
    events = [make_event(site_id, n, snapshot=True) for n in range(5)]
    for event, jpeg in events:
        uplink.send_event(event, jpeg)
    wait_until(lambda: len(sub.received("event")) == 5, 10, "5 events delivered")
    wait_until(lambda: outbox.stats().depth == 0, 5, "outbox emptied by the gateway's acks")

    status = sub.json("status")
    assert status[0]["state"] == "online"
    assert sub.received("status")[0].payload  # decodes as a Status
    c.decode(c.Status, sub.received("status")[0].payload)
    order = [
        m.topic.split("/", 4)[4]
        for m in sub.messages
        if m.topic.split("/")[4] in {"event", "snapshot"}
    ]
    expected: list[str] = []
    for event, _ in events:
        assert event.snapshot is not None
        expected += [f"snapshot/{event.snapshot.snapshot_id}", "event"]
    assert order == expected
    for message in sub.messages:
        c.decode_for_topic(message.topic, message.payload)  # everything on the wire is valid
    assert uplink.stats().acked == 10
    assert sub.json("ack")  # the gateway's acks went to this device's ack topic


def test_uplink_rejects_snapshot_that_does_not_match_its_ref(
    mqtt_broker: MosquittoBroker, site_id: str, tmp_path: Path
) -> None:
    uplink, outbox = make_uplink(mqtt_broker, site_id, tmp_path / "o.db")
    event, jpeg = make_event(site_id, 1, snapshot=True)
    assert jpeg is not None
    with pytest.raises(SnapshotMismatchError, match="does not match"):
        uplink.send_event(event, jpeg + b"x")
    plain, _ = make_event(site_id, 2)
    with pytest.raises(SnapshotMismatchError, match="no snapshot"):
        uplink.send_event(plain, jpeg)
    assert outbox.stats().depth == 0
    outbox.close()


def test_uplink_replay_redelivers_identical_bytes(
    mqtt_broker: MosquittoBroker, site_id: str, tmp_path: Path, running: list[Callable[[], None]]
) -> None:
    """A row whose PUBACK was lost (crash before the delete) is sent again, byte for byte."""
    sub = Subscriber(mqtt_broker, [c.subscription(c.Channel.EVENT, site_id=site_id)]).start()
    running.append(sub.stop)
    db = tmp_path / "o.db"
    uplink, outbox = make_uplink(mqtt_broker, site_id, db)
    for n in range(20):
        uplink.send_event(*make_event(site_id, n))
    stored = outbox.peek(limit=100)
    # First delivery by a plain client standing in for the crashed process: the broker got
    # the messages, the outbox never heard the acks.
    first = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"crashed-{site_id}")
    first.connect(mqtt_broker.host, mqtt_broker.port)
    first.loop_start()
    for row in stored:
        first.publish(row.topic, row.payload, qos=1).wait_for_publish(5)
    first.loop_stop()
    first.disconnect()
    uplink.start()
    running.append(outbox.close)
    running.append(uplink.stop)
    wait_until(lambda: len(sub.received("event")) == 40, 10, "20 events delivered twice")
    by_id = _events_by_id(sub)
    assert len(by_id) == 20
    payloads: dict[str, set[bytes]] = defaultdict(set)
    for message in sub.received("event"):
        payloads[json.loads(message.payload)["event_id"]].add(message.payload)
    assert all(len(copies) == 1 for copies in payloads.values())  # identical bytes, same msg_id


@pytest.mark.parametrize(
    "outage_s",
    [
        # Every claim below holds for a short outage; the full 30 s one (reconnect backoff at
        # its longest, production spread the whole time) is the fault-injection run.
        pytest.param(3.0, id="3s"),
        pytest.param(30.0, id="30s", marks=pytest.mark.slow),
    ],
)
def test_uplink_broker_down_while_500_events_then_all_arrive(
    broker_factory: Callable[..., MosquittoBroker],
    site_id: str,
    tmp_path: Path,
    running: list[Callable[[], None]],
    outage_s: float,
) -> None:
    broker = broker_factory()
    sub = Subscriber(
        broker,
        [
            c.subscription(c.Channel.EVENT, site_id=site_id),
            c.subscription(c.Channel.SNAPSHOT, site_id=site_id),
        ],
    ).start()
    running.append(sub.stop)
    gateway = AckingGateway(broker, site_id).start()  # persistent session: survives the outage
    running.append(gateway.stop)
    uplink, outbox = make_uplink(broker, site_id, tmp_path / "o.db")
    uplink.start()
    running.append(outbox.close)
    running.append(uplink.stop)
    wait_until(lambda: uplink.link.connected, 10, "uplink connected")

    # A burst right before the outage leaves some messages in flight when the broker goes.
    produced = [make_event(site_id, n, snapshot=n % 25 == 0) for n in range(500)]
    for event, jpeg in produced[:40]:
        uplink.send_event(event, jpeg)
    broker.stop()
    outage_start = time.monotonic()
    for i, (event, jpeg) in enumerate(produced[40:], start=40):
        uplink.send_event(event, jpeg)
        # Spread production over the outage, as a camera would.
        time.sleep(max(0.0, outage_start + outage_s * i / 500 - time.monotonic()))
    time.sleep(max(0.0, outage_start + outage_s - time.monotonic()))
    assert not uplink.link.connected
    assert outbox.stats().depth >= 460  # held on disk, not in memory
    broker.start()

    wait_until(lambda: len(_events_by_id(sub)) == 500, 60, "all 500 event ids after restart")
    wait_until(lambda: outbox.stats().depth == 0, 10, "outbox drained")
    by_id = _events_by_id(sub)
    originals = {event.event_id: event for event, _ in produced}
    assert set(by_id) == set(originals)  # none missing, none invented
    for event_id, copies in by_id.items():
        # Every copy, redeliveries included, carries the original msg_id.
        assert {copy["msg_id"] for copy in copies} == {originals[event_id].msg_id}
    # Each snapshot's first copy arrived before the first copy of the event referencing it.
    first_at: dict[str, int] = {}
    for i, message in enumerate(sub.messages):
        key = message.topic.rsplit("/", 1)[-1]
        if key == "event":
            key = json.loads(message.payload)["event_id"]
        first_at.setdefault(key, i)
    with_snapshots = [e for e, jpeg in produced if jpeg is not None]
    assert len(with_snapshots) == 20
    for event in with_snapshots:
        assert event.snapshot is not None
        assert first_at[event.snapshot.snapshot_id] < first_at[event.event_id]
    assert outbox.stats().dropped == 0
    assert set(gateway.committed_msg_ids) == {event.msg_id for event, _ in produced}


def _driver(broker: MosquittoBroker, site_id: str, db: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.edge.uplink.node_driver",
            "--port",
            str(broker.port),
            "--site",
            site_id,
            "--db",
            str(db),
            *args,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def _await_line(proc: subprocess.Popen[str], wanted: str) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == wanted:
            return
    raise AssertionError(f"driver exited (rc={proc.wait()}) before printing {wanted!r}")


def _kill_9(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


def test_uplink_kill_9_flips_retained_status_offline_within_1_5_keepalive(
    broker_factory: Callable[..., MosquittoBroker],
    site_id: str,
    tmp_path: Path,
    running: list[Callable[[], None]],
) -> None:
    keepalive = 2
    broker = broker_factory()
    status = str(c.status_topic(site_id, DEVICE))
    sub = Subscriber(broker, [status]).start()
    running.append(sub.stop)
    proc = _driver(broker, site_id, tmp_path / "o.db", "--keepalive", str(keepalive))
    running.append(proc.kill)
    _await_line(proc, "connected")
    wait_until(lambda: len(sub.received("status")) == 1, 5, "online status")
    assert sub.json("status")[0]["state"] == "online"
    killed_at = time.time()
    _kill_9(proc)
    wait_until(lambda: len(sub.received("status")) == 2, 1.5 * keepalive, "offline within 1.5x")
    offline = sub.received("status")[1]
    assert offline.at - killed_at <= 1.5 * keepalive
    body = c.decode(c.Status, offline.payload)
    assert isinstance(body, c.Status)
    assert body.state == "offline"
    assert body.reason == "connection lost (last will)"
    # Retained: a late subscriber sees offline at once.
    late = Subscriber(broker, [status]).start()
    running.append(late.stop)
    wait_until(lambda: len(late.received("status")) == 1, 5, "retained status")
    assert late.received("status")[0].retain
    assert late.json("status")[0]["state"] == "offline"


def test_uplink_clean_stop_publishes_retained_offline(
    mqtt_broker: MosquittoBroker, site_id: str, tmp_path: Path
) -> None:
    status = str(c.status_topic(site_id, DEVICE))
    sub = Subscriber(mqtt_broker, [status]).start()
    uplink, outbox = make_uplink(mqtt_broker, site_id, tmp_path / "o.db")
    uplink.start()
    wait_until(lambda: len(sub.received("status")) == 1, 5, "online")
    uplink.stop()
    outbox.close()
    wait_until(lambda: len(sub.received("status")) == 2, 5, "offline")
    sub.stop()
    assert [s["state"] for s in sub.json("status")] == ["online", "offline"]
    assert sub.json("status")[1]["reason"] == "shutdown"


def test_uplink_per_device_credentials_and_wrong_password_loses_nothing(
    mqtt_auth_broker: MosquittoBroker,
    site_id: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sub = Subscriber(
        mqtt_auth_broker,
        [c.subscription(c.Channel.EVENT, site_id=site_id)],
        username="gateway",
        password=GATEWAY_PASSWORD,
    ).start()
    outbox = Outbox(tmp_path / "o.db")
    base = link_options(mqtt_auth_broker, site_id, device_id="device-a")
    wrong = Uplink(replace(base, username="device-a", password=SecretStr("wrong")), outbox)
    wrong.start()
    event, _ = make_event(site_id, 1, device_id="device-a")
    wrong.send_event(event)
    wait_until(lambda: "broker refused the connection" in caplog.text, 10, "a refused connect")
    assert not wrong.link.connected
    wrong.stop()
    assert outbox.stats().depth == 1  # refused, but kept

    password = SecretStr(DEVICE_PASSWORDS["device-a"])
    right = Uplink(replace(base, username="device-a", password=password), outbox)
    right.start()
    wait_until(lambda: len(sub.received("event")) == 1, 10, "event delivered with credentials")
    wait_until(lambda: right.stats().pubacked >= 1, 5, "PUBACKed")
    right.stop()
    assert outbox.stats().depth == 1  # PUBACKed only: kept until the gateway acks it
    outbox.close()
    sub.stop()
    assert sub.json("event")[0]["msg_id"] == event.msg_id


def test_uplink_heartbeat_is_not_queued_while_offline(
    broker_factory: Callable[..., MosquittoBroker], site_id: str, tmp_path: Path
) -> None:
    broker = broker_factory()
    broker.stop()
    uplink, outbox = make_uplink(broker, site_id, tmp_path / "o.db")
    uplink.start()
    heartbeat = c.Heartbeat(
        ts=time.time(),
        site_id=site_id,
        device_id=DEVICE,
        interval_s=30,
        uptime_s=1,
        software_version="0.1.0",
    )
    assert uplink.send_heartbeat(heartbeat) is False
    assert outbox.stats().depth == 0
    uplink.stop()
    outbox.close()
