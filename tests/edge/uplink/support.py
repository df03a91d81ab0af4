"""Helpers for the uplink tests: contract-built events, a real paho subscriber, waiting."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from pydantic import JsonValue

import contract as c
from edge.link_options import LinkOptions
from edge.outbox import Outbox
from edge.uplink import Uplink
from tests.support.broker import MosquittoBroker

DEVICE = "edge-test-01"
REPO = Path(__file__).resolve().parents[3]


def fake_jpeg(index: int, size: int = 2048) -> bytes:
    """Bytes with JPEG markers (all the contract checks) and unique content."""
    body = hashlib.sha256(str(index).encode()).digest() * (size // 32)
    return b"\xff\xd8" + body + b"\xff\xd9"


def make_event(
    site_id: str,
    index: int,
    *,
    device_id: str = DEVICE,
    severity: c.Severity = c.Severity.NORMAL,
    snapshot: bool = False,
    now: float | None = None,
) -> tuple[c.DetectionEvent, bytes | None]:
    """A valid start event with a unique event id (and a snapshot when asked)."""
    ts = time.time() if now is None else now
    jpeg = fake_jpeg(index) if snapshot else None
    ref = None
    if jpeg is not None:
        ref = c.SnapshotRef(
            snapshot_id=f"snap-{index:06d}",
            sha256=hashlib.sha256(jpeg).hexdigest(),
            size_bytes=len(jpeg),
            width=640,
            height=480,
        )
    event = c.DetectionEvent(
        ts=ts,
        site_id=site_id,
        device_id=device_id,
        event_id=f"ev-{index:06d}-{uuid.uuid4().hex[:8]}",
        phase=c.EventPhase.START,
        seq=0,
        category=c.EventCategory.ILLEGAL_PARKING,
        severity=severity,
        camera_id="cam-north",
        zone_id="no-parking-a",
        track_id=index,
        object_class="car",
        object_category=c.ObjectCategory.VEHICLE,
        score=0.9,
        boxes=[c.BoxEvidence(ts=ts, box=(0.1, 0.2, 0.3, 0.4), score=0.9)],
        dwell_s=60.0,
        started_at=ts - 60.0,
        model=c.ModelRef(name="yolox_nano", version="0.1.1rc0-k3d4f111"),
        snapshot=ref,
    )
    return event, jpeg


def lift_clip(folder: Path, images: Path, frames: int) -> Path:
    """A short 'elevator' clip: the photo with a bicycle (dog.jpg), repeated `frames` times."""
    folder.mkdir()
    for i in range(frames):
        shutil.copy(images / "dog.jpg", folder / f"frame-{i:03d}.jpg")
    return folder


def lift_camera(clip: Path) -> dict[str, object]:
    """A camera over `clip` whose cabin is the whole frame; 3 sightings confirm a bike."""
    return {
        "camera_id": "cam-lift",
        "source": str(clip),
        "fps": 5,
        "zones": [
            {
                "id": "cabin",
                "rule": "ebike_in_elevator",
                "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
                "min_consecutive": 3,
            }
        ],
    }


def node_yaml(
    path: Path, broker: MosquittoBroker, site_id: str, device_id: str, **extra: object
) -> Path:
    """A NODE.yaml at `path` for an anonymous test broker (quick reconnects, 1 s heartbeats,
    outbox and state under ``state/``); `extra` adds or replaces top-level keys."""
    config: dict[str, object] = {
        "site_id": site_id,
        "device_id": device_id,
        "data_dir": "state",
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "allow_anonymous": True,
            "keepalive_s": 5,
            "reconnect_max_s": 1,
        },
        "outbox": {"path": "state/outbox.db"},
        "heartbeat_interval_s": 1,
        **extra,
    }
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def edge_run(node: Path, *args: str) -> subprocess.Popen[str]:
    """``guanjia edge run --config node`` as a process, stdout and stderr in one text pipe."""
    return subprocess.Popen(
        [sys.executable, "-m", "guanjia", "edge", "run", "--config", str(node), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def command_message(
    site_id: str,
    device_id: str,
    name: str,
    command_id: str,
    args: dict[str, JsonValue] | None = None,
    *,
    ts: float | None = None,
) -> tuple[str, bytes]:
    """(topic, payload) of a gateway command to a node; `ts` defaults to now."""
    command = c.Command(
        ts=time.time() if ts is None else ts,
        site_id=site_id,
        device_id=device_id,
        command_id=command_id,
        name=name,
        args=args or {},
        issued_by="gateway",
    )
    return str(c.command_topic(site_id, device_id, name)), c.encode(command)


def link_options(
    broker: MosquittoBroker,
    site_id: str,
    *,
    device_id: str = DEVICE,
    keepalive_s: int = 5,
    inflight: int = 32,
    subscriptions: tuple[str, ...] = (),
) -> LinkOptions:
    """Options for an anonymous test broker, reconnecting every second."""
    return LinkOptions(
        host=broker.host,
        port=broker.port,
        site_id=site_id,
        device_id=device_id,
        software_version="0.1.0",
        keepalive_s=keepalive_s,
        reconnect_min_s=1,
        reconnect_max_s=1,
        inflight=inflight,
        subscriptions=subscriptions,
    )


def make_uplink(broker: MosquittoBroker, site_id: str, db: Path) -> tuple[Uplink, Outbox]:
    """An unstarted Uplink with the default test link options, and its fresh outbox."""
    outbox = Outbox(db)
    return Uplink(link_options(broker, site_id), outbox), outbox


def wait_until(predicate: Callable[[], bool], timeout: float, message: str) -> None:
    """Poll `predicate` until true; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s: {message}")


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float


@dataclass
class Subscriber:
    """A real paho subscriber with a persistent session (it survives broker restarts)."""

    broker: MosquittoBroker
    topics: list[str]
    client_id: str = field(default_factory=lambda: "sub-" + uuid.uuid4().hex[:10])
    username: str | None = None
    password: str | None = None
    messages: list[Received] = field(default_factory=list)
    connects: int = 0
    subacks: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=False,
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        if self.username:
            self._client.username_pw_set(self.username, self.password)
        self._client.reconnect_delay_set(1, 1)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        for topic in self.topics:
            client.subscribe(topic, qos=1)
        with self._lock:
            self.connects += 1

    def _on_subscribe(self, client, userdata, mid, reason_code_list, properties) -> None:
        with self._lock:
            self.subacks += 1

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append(
                Received(message.topic, bytes(message.payload), bool(message.retain), time.time())
            )

    def start(self) -> Subscriber:
        self._client.connect(self.broker.host, self.broker.port, keepalive=5)
        self._client.loop_start()
        wait_until(lambda: self.connects > 0, 10, "subscriber connected")
        # paho's subscribe() does not wait for the SUBACK; a message published before it may
        # not be routed to us yet.
        wait_until(lambda: self.subacks >= len(self.topics), 10, "subscriptions acknowledged")
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def received(self, channel: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic.split("/")[4] == channel]

    def json(self, channel: str) -> list[dict[str, object]]:
        return [json.loads(m.payload) for m in self.received(channel)]

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self._client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=5)
