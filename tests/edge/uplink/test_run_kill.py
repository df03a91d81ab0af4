"""`guanjia edge run` killed with -9 while messages are in flight, then restarted: none lost.

The broker is up the whole time and PUBACKs everything; the gateway double receives the
messages but withholds its end-to-end acks (a gateway that has not committed them, or a broker
that confirmed them and then lost them). An outbox that deleted rows on PUBACK has nothing left
to re-send after the kill and fails this test.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import contract as c
from edge.outbox import Outbox
from tests.edge.uplink.support import Subscriber, lift_camera, lift_clip, wait_until
from tests.support.ack_gateway import AckingGateway
from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.mqtt

REPO = Path(__file__).resolve().parents[3]
DEVICE = "edge-kill-01"
PINGS = 30


def _node_yaml(path: Path, broker: MosquittoBroker, site_id: str, **extra: Any) -> Path:
    config: dict[str, Any] = {
        "site_id": site_id,
        "device_id": DEVICE,
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
    path.write_text(yaml.safe_dump(config))
    return path


def _edge_run(node: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "guanjia", "edge", "run", "--config", str(node), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _ping(site_id: str, n: int) -> tuple[str, bytes]:
    command = c.Command(
        ts=1_795_300_000.0,
        site_id=site_id,
        device_id=DEVICE,
        command_id=f"ping-{n:06d}",
        name="ping",
        issued_by="gateway",
    )
    return str(c.command_topic(site_id, DEVICE, "ping")), c.encode(command)


def test_edge_run_kill_9_with_messages_in_flight_then_restart_delivers_every_one(
    mqtt_broker: MosquittoBroker,
    site_id: str,
    tmp_path: Path,
    model_dir: Path,
    testdata_images: Path,
) -> None:
    clip = lift_clip(tmp_path / "frames", testdata_images, frames=10)
    (tmp_path / "cam.yaml").write_text(yaml.safe_dump(lift_camera(clip)))
    model = {"dir": str(model_dir), "manifest": str(REPO / "models/yolox_nano.manifest.json")}
    with_camera = _node_yaml(
        tmp_path / "node.yaml", mqtt_broker, site_id, model=model, cameras=[{"path": "cam.yaml"}]
    )
    gateway = AckingGateway(mqtt_broker, site_id, acking=False).start()
    operator = Subscriber(mqtt_broker, [str(c.status_topic(site_id, DEVICE))]).start()
    first = _edge_run(with_camera)
    try:
        wait_until(lambda: bool(gateway.received_msg_ids), 60, "a first event from edge run")
        for n in range(PINGS):
            operator.publish(*_ping(site_id, n))
        wait_until(
            lambda: len(gateway.received_msg_ids) >= PINGS + 1, 20, "results received, unacked"
        )
        # Every message so far reached the broker and was PUBACKed; none was acked end to end.
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()
    in_flight = set(gateway.received_msg_ids)
    assert gateway.committed_count() == 0
    with Outbox(tmp_path / "state" / "outbox.db") as box:
        durable = {row.msg_id for row in box.peek(limit=10_000) if row.msg_id is not None}
    expected = in_flight | durable

    # Restart the same node (same device, same outbox) without cameras; the gateway now acks.
    gateway.set_acking(True)
    restart = _node_yaml(tmp_path / "restart.yaml", mqtt_broker, site_id)
    second = _edge_run(restart, "--exit-when-clips-end")
    try:
        output, _ = second.communicate(timeout=60)
    finally:
        if second.poll() is None:
            second.kill()
            second.communicate()
    assert second.returncode == 0, output
    operator.stop()
    gateway.stop()

    missing = expected - set(gateway.committed_msg_ids)
    assert not missing, f"{len(missing)} of {len(expected)} messages lost across kill -9"
    assert len(expected) >= PINGS + 1
    # Re-sends are duplicates by msg_id only: nothing arrived that is not one of ours.
    assert set(gateway.received_msg_ids) == set(gateway.committed_msg_ids)
    assert any(gateway.received_msg_ids[key] >= 2 for key in in_flight)  # really re-sent
    with Outbox(tmp_path / "state" / "outbox.db") as box:
        assert box.stats().depth == 0
