"""The deployment files are consistent with the code and the real Mosquitto accepts its config.

No Docker engine runs here, so images are not built; what can be checked without one is.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import GatewaySettings, MqttSettings
from tests.support.broker import free_port, mosquitto_binary

DOCKER = Path(__file__).resolve().parent.parent / "docker"
REPO = DOCKER.parent


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_builds_existing_dockerfiles() -> None:
    for name, service in _compose()["services"].items():
        build = service.get("build")
        if build:
            assert (DOCKER / build["context"] / build["dockerfile"]).is_file(), name


def test_dockerfiles_copy_existing_paths() -> None:
    for dockerfile in DOCKER.rglob("Dockerfile"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY "):
                for source in line.split()[1:-1]:
                    assert (REPO / source).exists(), f"{dockerfile}: {source}"


def test_compose_gateway_env_names_real_settings() -> None:
    env = _compose()["services"]["gateway"]["environment"]
    for key in env:
        assert key.startswith("GUANJIA_GATEWAY_"), key
        name = key.removeprefix("GUANJIA_GATEWAY_").lower()
        if "__" in name:
            outer, inner = name.split("__", 1)
            assert outer == "mqtt"
            assert inner in MqttSettings.model_fields, key
        else:
            assert name in GatewaySettings.model_fields, key


@pytest.mark.mqtt
def test_mosquitto_accepts_site_config(mosquitto_available: None, tmp_path: Path) -> None:
    """Start the real broker on the shipped config (paths moved into tmp_path)."""
    conf = (DOCKER / "mosquitto" / "mosquitto.conf").read_text()
    port = free_port()
    conf = conf.replace("/mosquitto/", f"{tmp_path}/").replace(
        "listener 1883", f"listener {port} 127.0.0.1"
    )
    (tmp_path / "config").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "config" / "passwd").write_text("")
    (tmp_path / "config" / "acl").write_text("")
    if os.geteuid() == 0:
        conf += "user root\n"  # stay root so the broker can read pytest's tmp dir
    (tmp_path / "mosquitto.conf").write_text(conf)
    binary = mosquitto_binary()
    assert binary is not None
    proc = subprocess.Popen(
        [binary, "-c", str(tmp_path / "mosquitto.conf")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(1.0)
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert b"Error" not in out, out.decode()
