"""The deployment files are consistent with the code and the real Mosquitto accepts its config.

No Docker engine runs here, so images are not built; what can be checked without one is.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from gateway.config import GatewaySettings
from gateway.mqtt_settings import MqttSettings
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


def _setting_exists(path: list[str]) -> bool:
    """Whether `path` (the lower-cased parts of a GUANJIA_GATEWAY_A__B name) is a setting."""
    model: Any = GatewaySettings
    for i, part in enumerate(path):
        fields = model.model_fields
        if part not in fields:
            return False
        annotation = fields[part].annotation
        if i < len(path) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


def _gateway_envs() -> dict[str, dict[str, str]]:
    services = _compose()["services"]
    return {
        name: {k: str(v) for k, v in services[name]["environment"].items()}
        for name in ("gateway", "gateway-admin")
    }


def test_compose_gateway_env_names_real_settings() -> None:
    """Every GUANJIA_GATEWAY_* name (less a _FILE suffix: a secret file) is a setting."""
    assert _setting_exists(["telemetry", "influx_token"])
    assert not _setting_exists(["telemetry", "influx_tokn"])
    for service, env in _gateway_envs().items():
        for key, value in env.items():
            name = key
            if key.endswith("_FILE"):
                assert value.startswith("/run/secrets/"), (service, key)
                name = key.removesuffix("_FILE")
            if name in ("PGPASSWORD", "GUANJIA_MQTT_PASSWORD"):
                continue  # libpq's, and `guanjia gateway mqtt-account`'s
            assert name.startswith("GUANJIA_GATEWAY_"), (service, key)
            path = name.removeprefix("GUANJIA_GATEWAY_").lower().split("__")
            assert _setting_exists(path), (service, key)


def test_compose_keeps_every_secret_in_a_file() -> None:
    """No secret value in the compose file: each secret-like variable names a file under
    /run/secrets that the service mounts and the file declares (docker secrets)."""
    data = _compose()
    declared = data["secrets"]
    for spec in declared.values():
        assert set(spec) == {"file"}
        assert spec["file"].startswith("./secrets/")
    checked = 0
    for name, service in data["services"].items():
        mounted = set(service.get("secrets", []))
        for key, value in (service.get("environment") or {}).items():
            secret_like = any(w in key for w in ("PASSWORD", "SECRET", "TOKEN"))
            if key.endswith(("_FILE", "__FILE")):
                secret = str(value).removeprefix("/run/secrets/")
                assert secret in mounted, (name, key)
                assert secret in declared, (name, key)
                checked += 1
            else:
                assert not secret_like, f"{name}: {key} holds a secret in the compose file"
                assert "${" not in str(value), f"{name}: {key} interpolates from the shell"
        assert mounted <= set(declared), name
    assert checked >= 10


def test_compose_matches_the_compose_specification() -> None:
    """The Compose specification's JSON schema (vendored by check-jsonschema, Apache-2.0)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(DOCKER / "compose.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_schema_check_can_fail(tmp_path: Path) -> None:
    broken = _compose()
    broken["services"]["gateway"]["healthcheck"]["intervall"] = "10s"
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "intervall" in done.stdout + done.stderr


def test_every_service_has_a_health_check_and_its_data_a_volume() -> None:
    data = _compose()
    for name, service in data["services"].items():
        if "admin" in service.get("profiles", []):
            continue
        assert "healthcheck" in service, name
        assert service.get("restart") == "unless-stopped", name
    named = set(data["volumes"])
    for name, path in {
        "mosquitto": "/mosquitto/data",
        "postgres": "/var/lib/postgresql/data",
        "victoriametrics": "/storage",
        "grafana": "/var/lib/grafana",
        "gateway": "/var/lib/guanjia",
    }.items():
        mounts = [str(v).split(":") for v in data["services"][name]["volumes"]]
        assert any(m[0] in named and m[1] == path for m in mounts), name


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


def test_every_shipped_broker_config_sends_without_nagle(tmp_path: Path) -> None:
    """Mosquitto's default keeps Nagle on: a PUBLISH to the gateway (or an Ack to a device)
    waited ~40 ms behind the client's delayed ACK of the last PUBACK (docs/gateway.md
    "Latency")."""
    from guanjia.demo_setup import broker_config

    shipped = {
        "docker": (DOCKER / "mosquitto" / "mosquitto.conf").read_text(),
        "demo": broker_config(
            port=1883, passwd_file=tmp_path / "p", acl_file=tmp_path / "a", as_root=False
        ),
    }
    for name, conf in shipped.items():
        assert _settings_of(conf).get("set_tcp_nodelay") == "true", name


def test_site_broker_persists_sessions_and_autosaves() -> None:
    """What a broker restart may lose is bounded by these (docs/gateway.md)."""
    settings = _settings_of((DOCKER / "mosquitto" / "mosquitto.conf").read_text())
    assert settings["persistence"] == "true"
    assert int(settings["autosave_interval"]) <= 30
    assert settings.get("persistent_client_expiration") is None  # sessions never expire


def test_compose_gateway_identity_is_consistent() -> None:
    """The compose file's settings load, and the client id follows the username."""
    env = _gateway_envs()["gateway"]
    mqtt = {
        k.removeprefix("GUANJIA_GATEWAY_MQTT__").lower(): v
        for k, v in env.items()
        if k.startswith("GUANJIA_GATEWAY_MQTT__") and not k.endswith("_FILE")
    }
    settings = MqttSettings(**mqtt)
    assert settings.session_id == settings.username


def test_site_broker_is_tuned_for_the_gateways_batches() -> None:
    """The gateway acks a batch after its commit: Mosquitto's in-flight window per client
    caps the batch (its default, 20, would cap it at 20), and the offline queue must hold a
    gateway outage's alerts (default 1,000)."""
    settings = _settings_of((DOCKER / "mosquitto" / "mosquitto.conf").read_text())
    assert int(settings["max_inflight_messages"]) >= MqttSettings().batch_max
    assert int(settings["max_queued_messages"]) >= 100_000
    assert settings["max_queued_bytes"] == "0"
