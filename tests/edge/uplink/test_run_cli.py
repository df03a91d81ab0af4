"""`guanjia edge run` as a real process: live until SIGTERM, then a clean offline exit."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import contract as c
from edge.outbox import Outbox
from tests.edge.uplink.support import Subscriber, edge_run, lift_camera, lift_clip, wait_until
from tests.support.ack_gateway import AckingGateway
from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.mqtt

REPO = Path(__file__).resolve().parents[3]
DEVICE = "edge-cli-01"


def test_edge_run_publishes_events_and_stops_cleanly_on_sigterm(
    mqtt_broker: MosquittoBroker,
    site_id: str,
    tmp_path: Path,
    model_dir: Path,
    testdata_images: Path,
) -> None:
    clip = lift_clip(tmp_path / "frames", testdata_images, frames=10)
    (tmp_path / "cam.yaml").write_text(yaml.safe_dump(lift_camera(clip)))
    secret = "pw-" + site_id  # anonymous broker ignores it; the test checks it is never printed
    (tmp_path / "pw").write_text(secret)
    node = tmp_path / "node.yaml"
    node.write_text(
        yaml.safe_dump(
            {
                "site_id": site_id,
                "device_id": DEVICE,
                "data_dir": "state",
                "mqtt": {
                    "host": mqtt_broker.host,
                    "port": mqtt_broker.port,
                    "password_file": "pw",
                    "keepalive_s": 5,
                },
                "outbox": {"path": "state/outbox.db"},
                "heartbeat_interval_s": 1,
                "model": {
                    "dir": str(model_dir),
                    "manifest": str(REPO / "models/yolox_nano.manifest.json"),
                },
                "cameras": [{"path": "cam.yaml"}],
            }
        )
    )
    sub = Subscriber(mqtt_broker, [c.subscription(site_id=site_id)]).start()
    gateway = AckingGateway(mqtt_broker, site_id).start()
    proc = edge_run(node)
    try:
        wait_until(lambda: bool(sub.received("event")), 60, "an event from edge run")
        wait_until(lambda: bool(sub.received("heartbeat")), 10, "a heartbeat")
        wait_until(lambda: gateway.committed_count() >= 1, 10, "the gateway committed it")
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output
    assert "received SIGTERM" in output
    assert secret not in output
    wait_until(lambda: len(sub.received("status")) >= 2, 5, "offline after SIGTERM")
    sub.stop()
    gateway.stop()
    states = [json.loads(m.payload) for m in sub.received("status")]
    assert states[0]["state"] == "online"
    assert states[-1]["state"] == "offline"
    assert states[-1]["reason"] == "shutdown"
    beat = c.decode(c.Heartbeat, sub.received("heartbeat")[-1].payload)
    assert isinstance(beat, c.Heartbeat)
    assert [cam.camera_id for cam in beat.cameras] == ["cam-lift"]
    assert beat.model is not None
    assert beat.model.name == "yolox_nano"
    with Outbox(tmp_path / "state" / "outbox.db") as box:
        # Everything published was acked by the gateway (end to end) before exit.
        assert box.stats().depth == 0


def test_edge_run_bad_config_exits_2_naming_the_problem(tmp_path: Path) -> None:
    node = tmp_path / "node.yaml"
    mqtt = {"host": "x", "password_env": "GUANJIA_TEST_UNSET"}
    node.write_text(yaml.safe_dump({"site_id": "s", "device_id": "d", "mqtt": mqtt}))
    result = subprocess.run(
        [sys.executable, "-m", "guanjia", "edge", "run", "--config", str(node)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "outbox" in result.stderr  # the missing section is named
