"""The wired node (`edge.app.EdgeNode`) on a real broker: clip → vision → outbox → MQTT."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

import contract as c
from edge.app import EdgeNode, RunOptions
from edge.node_config import CameraRef, RuntimeConfig, load_node_config
from edge.runtime_store import load_runtime
from tests.edge.uplink.support import (
    Subscriber,
    command_message,
    lift_camera,
    lift_clip,
    node_yaml,
    wait_until,
)
from tests.support.ack_gateway import AckingGateway
from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.mqtt

REPO = Path(__file__).resolve().parents[3]
DEVICE = "edge-lift-01"


def write_node(tmp_path: Path, broker: MosquittoBroker, site_id: str, **extra: Any) -> Path:
    return node_yaml(
        tmp_path / "node.yaml", broker, site_id, DEVICE, **{"config_version": "v1", **extra}
    )


def start_in_thread(node: EdgeNode, options: RunOptions | None = None) -> threading.Thread:
    thread = threading.Thread(target=node.run, args=(options,), daemon=True)
    thread.start()
    return thread


def test_node_runs_a_clip_end_to_end(
    mqtt_broker: MosquittoBroker,
    site_id: str,
    tmp_path: Path,
    model_dir: Path,
    testdata_images: Path,
) -> None:
    clip = lift_clip(tmp_path / "clip", testdata_images, frames=12)
    controller_topic = f"lift/{site_id}/controller"
    path = write_node(
        tmp_path,
        mqtt_broker,
        site_id,
        model={"dir": str(model_dir), "manifest": str(REPO / "models/yolox_nano.manifest.json")},
        cameras=[{"inline": lift_camera(clip)}],
        actions=[{"type": "log"}, {"type": "mqtt", "topic": controller_topic}],
    )
    sub = Subscriber(mqtt_broker, [c.subscription(site_id=site_id), controller_topic]).start()
    gateway = AckingGateway(mqtt_broker, site_id).start()
    node = EdgeNode(load_node_config(path), config_dir=tmp_path)
    thread = start_in_thread(node, RunOptions(exit_when_clips_end=True, drain_timeout_s=10))
    thread.join(timeout=60)
    assert not thread.is_alive()
    sub.stop()
    gateway.stop()

    events = [m for m in sub.messages if m.topic.endswith("/event")]
    assert events, "the bicycle in the cabin produced no event"
    assert {json.loads(m.payload)["msg_id"] for m in events} <= set(gateway.committed_msg_ids)
    first = c.decode_for_topic(events[0].topic, events[0].payload)[1]
    assert isinstance(first, c.DetectionEvent)
    assert first.category is c.EventCategory.EBIKE_IN_ELEVATOR
    assert first.camera_id == "cam-lift"
    assert first.model.name == "yolox_nano"
    assert first.snapshot is not None
    snap_topic = str(c.snapshot_topic(site_id, DEVICE, first.snapshot.snapshot_id))
    topics = [m.topic for m in sub.messages]
    assert topics.index(snap_topic) < topics.index(events[0].topic)  # snapshot first
    _, jpeg = c.decode_for_topic(snap_topic, sub.messages[topics.index(snap_topic)].payload)
    assert isinstance(jpeg, bytes)
    assert len(jpeg) == first.snapshot.size_bytes
    # The local actions went to the controller topic from the node itself.
    actions = [json.loads(m.payload) for m in sub.messages if m.topic == controller_topic]
    assert [a["action"] for a in actions] == ["voice_warning", "door_hold"]
    assert all(a["site_id"] == site_id and a["zone_id"] == "cabin" for a in actions)
    # Clean exit: outbox drained, retained offline last.
    states = [json.loads(m.payload)["state"] for m in sub.messages if m.topic.endswith("/status")]
    assert states[0] == "online"
    assert states[-1] == "offline"
    with_outbox = load_node_config(path).outbox.path
    from edge.outbox import Outbox

    with Outbox(with_outbox) as box:
        assert box.stats().depth == 0


def test_node_heartbeat_and_config_command(
    mqtt_broker: MosquittoBroker, site_id: str, tmp_path: Path
) -> None:
    path = write_node(tmp_path, mqtt_broker, site_id)
    sub = Subscriber(mqtt_broker, [c.subscription(site_id=site_id)]).start()
    config = load_node_config(path)
    node = EdgeNode(config, config_dir=tmp_path)
    thread = start_in_thread(node)
    try:
        wait_until(lambda: len(sub.received("heartbeat")) >= 1, 10, "a heartbeat")
        beat = c.decode(c.Heartbeat, sub.received("heartbeat")[0].payload)
        assert isinstance(beat, c.Heartbeat)
        assert beat.config_version == "v1"
        assert beat.outbox_depth == 0
        assert beat.disk_free_mb is not None
        assert beat.disk_free_mb > 0
        assert beat.cameras == []

        def send(command_id: str, args: dict[str, Any]) -> None:
            sub.publish(*command_message(site_id, DEVICE, "config", command_id, args))

        # A camera with a typo: rejected as a whole, nothing changes.
        send(
            "cmd-config-0001",
            {
                "config_version": "v2-bad",
                "cameras": [{"inline": {"camera_id": "x", "source": "/nope", "fsp": 5}}],
            },
        )
        send("cmd-config-0002", {"config_version": "v2", "heartbeat_interval_s": 2})
        wait_until(lambda: len(sub.received("cmd_result")) == 2, 10, "two results")
        results = {r["command_id"]: r for r in sub.json("cmd_result")}
        assert results["cmd-config-0001"]["status"] == "rejected"
        assert "fsp" in str(results["cmd-config-0001"]["reason"])
        assert results["cmd-config-0002"]["status"] == "ok"
        count = len(sub.received("heartbeat"))
        wait_until(lambda: len(sub.received("heartbeat")) > count + 1, 10, "new heartbeats")
        latest = sub.json("heartbeat")[-1]
        assert latest["config_version"] == "v2"
        assert latest["interval_s"] == 2
        # Persisted: a restart with the same NODE.yaml keeps v2 ...
        assert load_runtime(config).config_version == "v2"
    finally:
        node.request_stop()
        thread.join(timeout=15)
        sub.stop()
    # ... and an edited NODE.yaml (new version) wins over it.
    edited = config.model_copy(update={"config_version": "v3"})
    assert load_runtime(edited).config_version == "v3"


def test_node_refuses_to_start_without_its_password(tmp_path: Path) -> None:
    from edge.app import NodeStartError

    path = tmp_path / "node.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "site_id": "s1",
                "device_id": "d1",
                "mqtt": {"host": "127.0.0.1", "password_env": "GUANJIA_TEST_UNSET_PW"},
                "outbox": {"path": "o.db"},
            }
        )
    )
    with pytest.raises(NodeStartError, match="GUANJIA_TEST_UNSET_PW is not set"):
        EdgeNode(load_node_config(path), config_dir=tmp_path)


def test_config_applied_while_stopping_leaves_shutdown_clean(
    mqtt_broker: MosquittoBroker,
    site_id: str,
    tmp_path: Path,
    model_dir: Path,
    testdata_images: Path,
) -> None:
    """A config command that lands as SIGTERM arrives: its cameras never start; shutdown works."""
    clip = lift_clip(tmp_path / "clip", testdata_images, frames=3)
    manifest = str(REPO / "models/yolox_nano.manifest.json")
    path = write_node(
        tmp_path, mqtt_broker, site_id, model={"dir": str(model_dir), "manifest": manifest}
    )
    node = EdgeNode(load_node_config(path), config_dir=tmp_path)
    node.request_stop()
    node.apply_runtime(
        RuntimeConfig(config_version="v2", cameras=[CameraRef(inline=lift_camera(clip))])
    )
    assert [w.config.camera_id for w in node.cameras] == ["cam-lift"]
    node.shutdown()  # used to raise: it joined the camera thread that was never started
    assert node.cameras == []
    with pytest.raises(sqlite3.ProgrammingError):
        node.outbox.peek()


def test_elevator_door_hold_the_acl_refuses_is_counted_failed_not_sent(
    mqtt_auth_broker: MosquittoBroker,
    site_id: str,
    tmp_path: Path,
    model_dir: Path,
    testdata_images: Path,
) -> None:
    """Finding 15 on the rule path: the bike confirms, the node fires voice + door hold to a
    controller topic its broker account was never granted; both must count as failed."""
    from edge.actions import MqttActionSink
    from tests.conftest import DEVICE_PASSWORDS

    clip = lift_clip(tmp_path / "clip", testdata_images, frames=12)
    (tmp_path / "pw").write_text(DEVICE_PASSWORDS["device-a"])
    controller_topic = f"lift/{site_id}/lift2/cmd"
    config: dict[str, Any] = {
        "site_id": site_id,
        "device_id": "device-a",
        "data_dir": "state",
        "mqtt": {
            "host": mqtt_auth_broker.host,
            "port": mqtt_auth_broker.port,
            "password_file": "pw",
            "keepalive_s": 5,
        },
        "outbox": {"path": "state/outbox.db"},
        "model": {"dir": str(model_dir), "manifest": str(REPO / "models/yolox_nano.manifest.json")},
        "cameras": [{"inline": lift_camera(clip)}],
        "actions": [{"type": "mqtt", "topic": controller_topic}],
    }
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(config))
    node = EdgeNode(load_node_config(path), config_dir=tmp_path)
    sink = node.actions
    assert isinstance(sink, MqttActionSink)
    # Nobody acks end to end here (only the outbox matters to this test): drain briefly.
    thread = start_in_thread(node, RunOptions(exit_when_clips_end=True, drain_timeout_s=1))
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert (sink.sent, sink.failed) == (0, 2)  # voice_warning and door_hold, both refused
    assert sink.last_failure == f"broker refused the publish to {controller_topic}: Not authorized"


def _facade_node(
    tmp_path: Path, broker: MosquittoBroker, site_id: str, model_dir: Path, duration_s: float
) -> EdgeNode:
    """A node whose one camera is a facade clip: a pot thrown from the 6th floor at 0.3 s,
    landing at 2.1 s."""
    from edge.imaging import encode_jpeg
    from guanjia import facade_scenes as F  # noqa: N812 - the module's own short name

    clip = F.FacadeClip("in-the-air", duration_s, drops=[F.Drop(0.3, 6, 2)])
    folder = tmp_path / "facade"
    folder.mkdir()
    for i in range(clip.n_frames):
        (folder / f"frame-{i:03d}.jpg").write_bytes(encode_jpeg(clip.frame(i), 95))
    camera = F.facade_config()
    camera["source"] = str(folder)
    path = write_node(
        tmp_path,
        broker,
        site_id,
        model={"dir": str(model_dir), "manifest": str(REPO / "models/yolox_nano.manifest.json")},
        cameras=[{"inline": camera}],
    )
    return EdgeNode(load_node_config(path), config_dir=tmp_path)


def _detection_events(sub: Subscriber) -> list[c.DetectionEvent]:
    events = [c.decode_for_topic(m.topic, m.payload)[1] for m in sub.received("event")]
    return [e for e in events if isinstance(e, c.DetectionEvent)]


def _thrown_events(sub: Subscriber, gateway: AckingGateway) -> list[tuple[str, str]]:
    found = _detection_events(sub)
    assert {e.msg_id for e in found} == set(gateway.committed_msg_ids)  # delivered end to end
    return [(e.category.value, e.phase.value) for e in found]


def test_a_fall_still_in_the_air_when_the_clip_ends_is_judged(
    mqtt_broker: MosquittoBroker, site_id: str, tmp_path: Path, model_dir: Path
) -> None:
    """The facade pipeline judges a fall when its track ends; the clip ending ends it too."""
    node = _facade_node(tmp_path, mqtt_broker, site_id, model_dir, duration_s=1.6)
    sub = Subscriber(mqtt_broker, [c.subscription(c.Channel.EVENT, site_id=site_id)]).start()
    gateway = AckingGateway(mqtt_broker, site_id).start()
    thread = start_in_thread(node, RunOptions(exit_when_clips_end=True, drain_timeout_s=10))
    thread.join(timeout=60)
    assert not thread.is_alive()
    gateway.stop()
    sub.stop()
    assert _thrown_events(sub, gateway) == [("thrown_object", "start"), ("thrown_object", "end")]


def test_a_fall_still_in_the_air_when_the_node_stops_is_judged(
    mqtt_broker: MosquittoBroker, site_id: str, tmp_path: Path, model_dir: Path
) -> None:
    node = _facade_node(tmp_path, mqtt_broker, site_id, model_dir, duration_s=4.0)
    sub = Subscriber(mqtt_broker, [c.subscription(c.Channel.EVENT, site_id=site_id)]).start()
    gateway = AckingGateway(mqtt_broker, site_id).start()
    thread = start_in_thread(node, RunOptions(drain_timeout_s=10))
    # Frame 30 is 1.5 s into the clip: the pot is falling (it lands at frame 42).
    wait_until(
        lambda: bool(node.cameras) and node.cameras[0].pipeline.stats().frames_processed >= 30,
        30,
        "the pot is in the air",
    )
    node.request_stop()
    thread.join(timeout=60)
    assert not thread.is_alive()
    gateway.stop()
    sub.stop()
    # The camera's stop judges the fall and puts both events in the outbox; the uplink's stop
    # waits only for what it has already sent, so on a busy machine they may still be held
    # there for the next start (the outbox's guarantee). Delivered or held, each is judged once.
    delivered = [e for e in _detection_events(sub) if e.msg_id in gateway.committed_msg_ids]
    from edge.outbox import Outbox

    with Outbox(node.config.outbox.path) as box:
        rows = [c.decode_for_topic(i.topic, i.payload)[1] for i in box.peek(limit=1000)]
    held = [e for e in rows if isinstance(e, c.DetectionEvent)]
    judged = {e.msg_id: (e.category.value, e.phase.value) for e in [*delivered, *held]}
    assert sorted(judged.values()) == [("thrown_object", "end"), ("thrown_object", "start")]
