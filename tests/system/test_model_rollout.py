"""Rollouts end to end: a real gateway process, ten real `guanjia edge run` processes and
Mosquitto, driven through the REST API (slow).

1. A deliberately broken model (weights damaged, signed with the good model's detections):
   the canary wave fails its self-test, the rollout halts, the canaries keep their model,
   the other eight never receive it.
2. A good model, cancelled mid-wave: the rollout ends at once, nothing is left pending or
   in flight, and every node's heartbeat shows what its row says.
3. A good model to the same ten: every wave, 100 % active, heartbeats show it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from edge.detector import OnnxDetector
from guanjia.artifacts import SigningKey
from tests.conftest import REPO_ROOT
from tests.gateway.apphelpers import PASSWORD, seed_users
from tests.gateway.proc import GatewayProcess, spawn_gateway
from tests.support.artifact_fixtures import good_detector, signing_key
from tests.support.artifacts import PHOTOS, broken_model, sign_real
from tests.support.broker import MosquittoBroker, free_port

__all__ = ["good_detector", "signing_key"]

pytestmark = pytest.mark.slow

NODES = 10
IN_FLIGHT = {"downloading", "verifying", "testing", "probation"}


@dataclass
class Fleet:
    gateway: GatewayProcess
    client: httpx.Client
    site: str
    devices: list[str]
    nodes: list[subprocess.Popen[bytes]]
    workdir: Path
    key: SigningKey
    broker: MosquittoBroker

    def kill9(self, device: str) -> None:
        """SIGKILL the node's process: no goodbye, no flush."""
        node = self.nodes[self.devices.index(device)]
        node.kill()
        node.wait(10)

    def restart(self, device: str) -> None:
        """Start the node again on the same data directory."""
        index = self.devices.index(device)
        self.nodes[index] = _start_node(
            self.workdir / device, self.broker, self.site, device, self.key, fresh=False
        )

    def rollout(self, rollout_id: str) -> dict[str, Any]:
        r = self.client.get(f"/api/rollouts/{rollout_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def wait(
        self, rollout_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 180.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body = self.rollout(rollout_id)
        while time.monotonic() < deadline:
            body = self.rollout(rollout_id)
            if done(body):
                return body
            time.sleep(0.5)
        raise AssertionError(f"rollout did not settle: {json.dumps(body, indent=1)[:3000]}")

    def publish(self, artifact: Path) -> str:
        """Upload through the CLI, as a maintainer would."""
        token = self.client.headers["Authorization"].removeprefix("Bearer ")
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "guanjia",
                "model",
                "publish",
                str(artifact),
                "--gateway",
                self.gateway.url,
            ],
            check=False,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "GUANJIA_TOKEN": token},
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.split(" as ")[-1].strip()

    def start(self, body: dict[str, Any]) -> str:
        r = self.client.post("/api/rollouts", json={"site_id": self.site, **body})
        assert r.status_code == 201, r.text
        rollout_id: str = r.json()["rollout_id"]
        return rollout_id

    def heartbeat_models(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for device in self.devices:
            health = self.client.get(f"/api/devices/{device}").json()["health"] or {}
            model = health.get("model")
            out[device] = None if model is None else f"{model['name']} {model['version']}"
        return out

    def node_state(self, device: str) -> dict[str, Any] | None:
        path = self.workdir / device / "state" / "models" / "state.json"
        return json.loads(path.read_text()) if path.exists() else None


@pytest.fixture
def fleet(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    signing_key: SigningKey,
    site_id: str,
) -> Iterator[Fleet]:
    count: int = getattr(request, "param", NODES)
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    seed_users(db)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    values = {
        "DATABASE_URL": db,
        "JWT_SECRET": "rollout-test-secret-0123456789abcdef",
        "MQTT__HOST": mqtt_broker.host,
        "MQTT__PORT": mqtt_broker.port,
        "MQTT__CLIENT_ID": "gw-" + uuid.uuid4().hex[:8],
        "MQTT__SITES": [site_id],
        "SLA_TICK_S": 5,
        "MODELS__STORE_DIR": str(tmp_path / "registry"),
        "MODELS__TRUSTED_KEYS": [signing_key.public.text()],
        "MODELS__PUBLIC_URL": url,
        "MODELS__TICK_S": 0.5,
    }
    gateway = spawn_gateway(dict(os.environ), values, tmp_path / "gateway.log", port)
    nodes: list[subprocess.Popen[bytes]] = []
    client = httpx.Client(base_url=url, timeout=30)
    try:
        gateway.wait_ready(60)
        login = client.post("/api/login", json={"username": "admin", "password": PASSWORD})
        client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        suffix = uuid.uuid4().hex[:6]
        devices = [f"cam{i:02d}-{suffix}" for i in range(count)]
        for device in devices:
            r = client.post(
                "/api/devices", json={"device_id": device, "site_id": site_id, "kind": "camera"}
            )
            assert r.status_code in (200, 201), r.text
            nodes.append(_start_node(tmp_path / device, mqtt_broker, site_id, device, signing_key))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            listed = client.get("/api/devices").json()
            if sum(1 for d in listed if d["online"]) == count:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"nodes did not come online: {gateway.log.read_text()[-2000:]}")
        yield Fleet(gateway, client, site_id, devices, nodes, tmp_path, signing_key, mqtt_broker)
    finally:
        for node in nodes:
            node.terminate()
        for node in nodes:
            try:
                node.wait(20)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()
        client.close()
        gateway.stop()


def _start_node(
    workdir: Path,
    broker: MosquittoBroker,
    site: str,
    device: str,
    key: SigningKey,
    *,
    fresh: bool = True,
) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=not fresh)
    config = {
        "site_id": site,
        "device_id": device,
        "data_dir": str(workdir / "state"),
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "allow_anonymous": True,
            "keepalive_s": 5,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1,
        },
        "outbox": {"path": str(workdir / "outbox.db"), "ack_timeout_s": 2, "ack_timeout_max_s": 4},
        "heartbeat_interval_s": 1,
        "model_updates": {"trusted_keys": [key.public.text()]},
    }
    path = workdir / "node.yaml"
    path.write_text(yaml.safe_dump(config))
    with (workdir / "edge.log").open("ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "guanjia",
                "edge",
                "run",
                "--config",
                str(path),
                "--log-level",
                "INFO",
            ],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _settled(body: dict[str, Any]) -> bool:
    return body["state"] in {"halted", "completed", "cancelled"} and not (
        IN_FLIGHT & set(body["counts"])
    )


def test_broken_then_cancelled_then_good_rollout_over_ten_real_nodes(
    fleet: Fleet,
    tmp_path: Path,
    model_dir: Path,
    testdata_images: Path,
    good_detector: OnnxDetector,
) -> None:
    photos = [testdata_images / name for name in PHOTOS]
    weights = model_dir / "yolox_nano.onnx"
    broken = tmp_path / "broken.gjm"
    sign_real(
        broken,
        fleet.key,
        model=broken_model(weights, tmp_path / "broken.onnx"),
        photos=photos,
        detections_from=good_detector,
        version="2.0.1",
    )
    good = tmp_path / "good.gjm"
    sign_real(
        good,
        fleet.key,
        model=weights,
        photos=photos,
        detections_from=good_detector,
        version="2.0.0",
    )
    better = tmp_path / "better.gjm"
    sign_real(
        better,
        fleet.key,
        model=weights,
        photos=photos,
        detections_from=good_detector,
        version="2.0.2",
    )
    policy = {"probation_s": 2, "device_timeout_s": 120}

    # 1. Broken: the canary wave (2) fails, the rollout halts, 8 never receive it.
    sha = fleet.publish(broken)
    rid = fleet.start({"artifact_sha256": sha, "policy": {**policy, "canary": 2}})
    body = fleet.wait(rid, _settled)
    assert body["state"] == "halted"
    # Halted at the first failure (1 of 2 is over 20 %); the other canary is stopped.
    assert body["reason"].startswith("wave 1: ")
    assert "of 2 devices failed or rolled back (threshold 20%)" in body["reason"]
    by_id = {d["device_id"]: d for d in body["devices"]}
    canaries = sorted(fleet.devices)[:2]
    failed = [by_id[d] for d in canaries if by_id[d]["state"] == "failed"]
    assert failed
    for device in failed:
        assert "self-test: frames/000.jpg: detections differ" in device["reason"]
        assert "the running model is unchanged" in device["reason"]
    assert {by_id[d]["state"] for d in canaries} <= {"failed", "cancelled", "rolled_back"}
    for device in sorted(fleet.devices)[2:]:
        assert by_id[device]["state"] == "cancelled"
        assert by_id[device]["commanded_at"] is None
        assert fleet.node_state(device) is None  # never commanded: nothing on its disk
    assert set(fleet.heartbeat_models().values()) == {None}

    # 2. Good, cancelled mid-wave: ends at once, then nothing stays in flight.
    sha = fleet.publish(good)
    rid = fleet.start(
        {"artifact_sha256": sha, "policy": {**policy, "canary": 1, "waves": [0.5, 1.0]}}
    )
    fleet.wait(rid, lambda b: b["wave"] == 1, timeout=120)
    r = fleet.client.post(f"/api/rollouts/{rid}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "cancelled"
    assert "pending" not in r.json()["counts"]
    body = fleet.wait(rid, _settled)
    assert set(body["counts"]) <= {"active", "cancelled", "rolled_back"}
    assert body["counts"].get("active", 0) >= 1  # the canary had finished
    time.sleep(2.5)  # a heartbeat or two after the last report
    models = fleet.heartbeat_models()
    for device in body["devices"]:
        expected = "yolox_nano 2.0.0" if device["state"] == "active" else None
        assert models[device["device_id"]] == expected, (device, models)

    # 3. Better, to the same ten: every wave, 100 %.
    sha = fleet.publish(better)
    rid = fleet.start({"artifact_sha256": sha, "policy": policy})
    body = fleet.wait(rid, _settled, timeout=300)
    assert body["state"] == "completed", body
    assert body["counts"] == {"active": NODES}
    assert body["waves"] == 3  # canary 1; 10 % adds none; 50 % adds 4; 100 % adds 5
    time.sleep(2.5)
    assert set(fleet.heartbeat_models().values()) == {"yolox_nano 2.0.2"}


@pytest.mark.parametrize("fleet", [3], indirect=True)
def test_kill_9_in_probation_boots_the_old_model_and_the_rollout_shows_it(
    fleet: Fleet,
    tmp_path: Path,
    model_dir: Path,
    testdata_images: Path,
    good_detector: OnnxDetector,
) -> None:
    good = tmp_path / "good.gjm"
    sign_real(
        good,
        fleet.key,
        model=model_dir / "yolox_nano.onnx",
        photos=[testdata_images / name for name in PHOTOS],
        detections_from=good_detector,
        version="3.0.0",
    )
    sha = fleet.publish(good)
    rid = fleet.start(
        {"artifact_sha256": sha, "policy": {"probation_s": 600, "device_timeout_s": 1200}}
    )
    canary = sorted(fleet.devices)[0]

    def canary_state(body: dict[str, Any]) -> str:
        return str(next(d for d in body["devices"] if d["device_id"] == canary)["state"])

    fleet.wait(rid, lambda b: canary_state(b) == "probation", timeout=120)
    time.sleep(1.5)
    assert fleet.heartbeat_models()[canary] == "yolox_nano 3.0.0"  # running it, on probation
    fleet.kill9(canary)
    fleet.restart(canary)
    body = fleet.wait(rid, _settled, timeout=120)
    row = next(d for d in body["devices"] if d["device_id"] == canary)
    assert row["state"] == "rolled_back"
    assert "restarted before probation ended" in row["reason"]
    assert body["state"] == "halted"
    time.sleep(2.5)
    assert fleet.heartbeat_models()[canary] is None  # back on the model it had
    state = fleet.node_state(canary)
    assert state is not None
    assert state["active"] is None
    assert state["job"] is None
