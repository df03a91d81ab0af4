"""`guanjia edge run` killed with -9 while messages are in flight, then restarted: none lost.

The broker is up the whole time and PUBACKs everything; the gateway double receives the
messages but withholds its end-to-end acks (a gateway that has not committed them, or a broker
that confirmed them and then lost them). An outbox that deleted rows on PUBACK has nothing left
to re-send after the kill and fails this test.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import yaml

import contract as c
from edge.outbox import Outbox
from tests.edge.uplink.support import (
    Subscriber,
    command_message,
    edge_run,
    lift_camera,
    lift_clip,
    node_yaml,
    wait_until,
)
from tests.support.ack_gateway import AckingGateway
from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.mqtt

REPO = Path(__file__).resolve().parents[3]
DEVICE = "edge-kill-01"
PINGS = 30


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
    with_camera = node_yaml(
        tmp_path / "node.yaml",
        mqtt_broker,
        site_id,
        DEVICE,
        model=model,
        cameras=[{"path": "cam.yaml"}],
    )
    gateway = AckingGateway(mqtt_broker, site_id, acking=False).start()
    operator = Subscriber(mqtt_broker, [str(c.status_topic(site_id, DEVICE))]).start()
    first = edge_run(with_camera)
    try:
        wait_until(lambda: bool(gateway.received_msg_ids), 60, "a first event from edge run")
        for n in range(PINGS):
            operator.publish(
                *command_message(site_id, DEVICE, "ping", f"ping-{n:06d}", ts=1_795_300_000.0)
            )
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
    restart = node_yaml(tmp_path / "restart.yaml", mqtt_broker, site_id, DEVICE)
    second = edge_run(restart, "--exit-when-clips-end")
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
