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


def _settings_of(conf: str) -> dict[str, str]:
    out = {}
    for line in conf.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            out[key] = value
    return out


def test_every_shipped_broker_config_ties_client_id_to_username(tmp_path: Path) -> None:
    """Issue 8, finding 1: without this a device's login can take the gateway's client id."""
    from guanjia.demo_setup import broker_config

    shipped = {
        "docker": (DOCKER / "mosquitto" / "mosquitto.conf").read_text(),
        "demo": broker_config(
            port=1883, passwd_file=tmp_path / "p", acl_file=tmp_path / "a", as_root=False
        ),
    }
    for name, conf in shipped.items():
        settings = _settings_of(conf)
        assert settings.get("use_username_as_clientid") == "true", name
        assert settings.get("allow_anonymous") == "false", name


def test_site_broker_persists_sessions_and_autosaves() -> None:
    """What a broker restart may lose is bounded by these (docs/gateway.md)."""
    settings = _settings_of((DOCKER / "mosquitto" / "mosquitto.conf").read_text())
    assert settings["persistence"] == "true"
    assert int(settings["autosave_interval"]) <= 30
    assert settings.get("persistent_client_expiration") is None  # sessions never expire


def test_compose_gateway_identity_is_consistent() -> None:
    """The compose file's settings load, and the client id follows the username."""
    env = {k: str(v) for k, v in _compose()["services"]["gateway"]["environment"].items()}
    mqtt = {
        k.removeprefix("GUANJIA_GATEWAY_MQTT__").lower(): v
        for k, v in env.items()
        if k.startswith("GUANJIA_GATEWAY_MQTT__") and "${" not in v
    }
    settings = MqttSettings(**mqtt)
    assert settings.session_id == settings.username
