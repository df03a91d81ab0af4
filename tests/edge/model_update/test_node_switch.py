"""The wired node switches a running camera to a new model, reports, and boots from it."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import JsonValue

import contract as c
from edge.app import EdgeNode, RunOptions
from edge.node_config import load_node_config
from guanjia.artifacts import SigningKey, sha256_file
from tests.edge.uplink.support import command_message, lift_camera, lift_clip, wait_until
from tests.support.broker import MosquittoBroker
from tests.support.http_files import FileServer

pytestmark = pytest.mark.mqtt

REPO = Path(__file__).resolve().parents[3]
DEVICE = "edge-update-01"


def _node(tmp_path: Path, broker: MosquittoBroker, site: str, key: SigningKey, **more: Any) -> Path:
    clip = tmp_path / "clip"
    if not clip.exists():
        lift_clip(clip, REPO.parent / "shared" / "testdata" / "images", frames=150)
    config: dict[str, Any] = {
        "site_id": site,
        "device_id": DEVICE,
        "data_dir": "state",
        "mqtt": {"host": broker.host, "port": broker.port, "allow_anonymous": True},
        "outbox": {"path": "state/outbox.db"},
        "heartbeat_interval_s": 1,
        "model": {"manifest": str(REPO / "models/yolox_nano.manifest.json"), **more},
        "cameras": [{"inline": lift_camera(clip)}],
        "model_updates": {"trusted_keys": [key.public.text()]},
    }
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _reports(node: EdgeNode) -> list[c.CommandResult]:
    out = []
    for row in node.outbox.peek(limit=1000):
        try:
            message = c.decode(c.CommandResult, row.payload)
        except c.ContractError:
            continue
        if isinstance(message, c.CommandResult) and message.name == "model_update":
            out.append(message)
    return out


def _event_models(node: EdgeNode) -> set[str]:
    found = set()
    for row in node.outbox.peek(limit=1000):
        try:
            message = c.decode(c.DetectionEvent, row.payload)
        except c.ContractError:
            continue
        if isinstance(message, c.DetectionEvent):
            found.add(message.model.version)
    return found


def test_a_running_camera_switches_reports_and_the_next_boot_keeps_it(  # noqa: PLR0917
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    site_id: str,
    model_dir: Path,
    files: FileServer,
    real_artifact: Path,
    signing_key: SigningKey,
) -> None:
    shutil.copy(real_artifact, files.root / "a.gjm")
    path = _node(tmp_path, mqtt_broker, site_id, signing_key, dir=str(model_dir))
    node = EdgeNode(load_node_config(path), config_dir=tmp_path)
    thread = threading.Thread(target=node.run, args=(RunOptions(),), daemon=True)
    thread.start()
    try:
        wait_until(lambda: bool(node.cameras), 20, "the camera")
        before = node.cameras[0]
        assert node.manifest is not None
        assert node.manifest.version != "2.0.0"
        sha = sha256_file(real_artifact)
        args: dict[str, JsonValue] = {
            "sha256": sha,
            "url": files.url("a.gjm"),
            "size": real_artifact.stat().st_size,
            "name": "yolox_nano",
            "version": "2.0.0",
            "probation_s": 1,
        }
        answer = node.commands.handle(
            *command_message(site_id, DEVICE, "model_update", "cmd-node-0001", args), time.time()
        )
        assert answer is not None
        assert answer.status is c.CommandStatus.OK
        assert answer.detail["state"] == "downloading"
        wait_until(
            lambda: any(r.detail.get("state") == "active" for r in _reports(node)),
            60,
            "the model to pass probation",
        )
        states = [r.detail["state"] for r in _reports(node)]
        assert states == ["downloading", "verifying", "testing", "probation", "active"]
        assert node.manifest is not None
        assert node.manifest.version == "2.0.0"
        assert node.cameras[0] is not before  # the camera reopened on the new model
        # Events from the reopened camera name the new model.
        wait_until(lambda: "2.0.0" in _event_models(node), 30, "an event from the new model")
        detail = _reports(node)[-1].detail
        assert detail["running"] == {"name": "yolox_nano", "version": "2.0.0"}
        assert detail["command"] == "cmd-node-0001"
    finally:
        node.request_stop()
        thread.join(30)
    # A restart boots the installed, known-good model (not NODE.yaml's). Booting needs no
    # broker: this one is unreachable, so the shutdown does not wait 2 s for acks that the
    # (gateway-less) test never sends.
    offline = yaml.safe_load(path.read_text())
    offline["mqtt"]["port"] = _closed_port()
    path.write_text(yaml.safe_dump(offline))
    again = EdgeNode(load_node_config(path), config_dir=tmp_path)
    try:
        again.start()
        assert again.manifest is not None
        assert again.manifest.version == "2.0.0"
    finally:
        again.shutdown()
