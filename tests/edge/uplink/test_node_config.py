"""NODE.yaml: every shipped example validates; secrets never leak; mistakes are named."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from edge.camera_worker import resolve_cameras
from edge.node_config import NodeConfig, NodeConfigError, load_node_config

REPO = Path(__file__).resolve().parents[3]
NODE_CONFIGS = sorted((REPO / "firmware_configs" / "nodes").glob("*.yaml"))


def test_there_are_example_node_configs() -> None:
    assert len(NODE_CONFIGS) >= 3


@pytest.mark.parametrize("path", NODE_CONFIGS, ids=lambda p: p.name)
def test_shipped_node_config_is_valid(path: Path) -> None:
    config = load_node_config(path)
    cameras = resolve_cameras(config.runtime.cameras, path.parent)
    assert [cam.camera_id for cam in cameras]  # every example node has a camera
    assert config.model is not None
    assert config.outbox.path.is_absolute()


def base(**extra: object) -> dict[str, object]:
    data: dict[str, object] = {
        "site_id": "s1",
        "device_id": "dev-1",
        "mqtt": {"host": "broker", "password_file": "secret.txt"},
        "outbox": {"path": "state/outbox.db"},
    }
    data.update(extra)
    return data


def write(tmp_path: Path, data: dict[str, object]) -> Path:
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_password_from_file_is_secret_and_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "secret.txt").write_text("hunter2-very-secret\n")
    config = load_node_config(write(tmp_path, base()))
    password = config.mqtt.password()
    assert password is not None
    assert password.get_secret_value() == "hunter2-very-secret"
    caplog.set_level(logging.DEBUG)
    logging.getLogger("test").info("config %s password %s", config, password)
    assert "hunter2" not in repr(config)
    assert "hunter2" not in str(password)
    assert "hunter2" not in caplog.text
    assert config.mqtt_username == "dev-1"  # defaults to the device id


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    config = load_node_config(write(tmp_path, base()))
    assert config.outbox.path == tmp_path / "state" / "outbox.db"
    assert config.mqtt.password_file == tmp_path / "secret.txt"


def test_password_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = base(mqtt={"host": "b", "password_env": "GJ_TEST_PW"})
    config = load_node_config(write(tmp_path, data))
    with pytest.raises(ValueError, match="GJ_TEST_PW is not set"):
        config.mqtt.password()
    monkeypatch.setenv("GJ_TEST_PW", "from-env")
    password = config.mqtt.password()
    assert password is not None
    assert password.get_secret_value() == "from-env"


@pytest.mark.parametrize(
    ("mqtt", "message"),
    [
        ({"host": "b"}, "per-device credentials are required"),
        ({"host": "b", "password_file": "a", "password_env": "B"}, "not both"),
        ({"host": "b", "allow_anonymous": True, "pasword_file": "x"}, "pasword_file"),
        (
            {"host": "b", "allow_anonymous": True, "tls": {"cert_file": "c.pem"}},
            "cert_file and key_file go together",
        ),
        (
            {"host": "b", "allow_anonymous": True, "reconnect_min_s": 9, "reconnect_max_s": 1},
            "reconnect_max_s",
        ),
    ],
)
def test_bad_mqtt_settings_are_named(tmp_path: Path, mqtt: object, message: str) -> None:
    with pytest.raises(NodeConfigError, match=message):
        load_node_config(write(tmp_path, base(mqtt=mqtt)))


def test_cameras_need_a_model(tmp_path: Path) -> None:
    data = base(cameras=[{"path": "cam.yaml"}])
    with pytest.raises(NodeConfigError, match="cameras need a model section"):
        load_node_config(write(tmp_path, data))


def test_anonymous_only_when_asked() -> None:
    config = NodeConfig.model_validate(
        base(mqtt={"host": "b", "allow_anonymous": True}, outbox={"path": "/o.db"})
    )
    assert config.mqtt_username is None
    assert config.mqtt.password() is None


def test_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NodeConfigError, match=r"missing\.yaml: cannot read"):
        load_node_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(NodeConfigError, match="top level must be a mapping"):
        load_node_config(tmp_path / "list.yaml")


def test_duplicate_camera_ids_are_rejected(tmp_path: Path) -> None:
    camera = {"camera_id": "cam-1", "source": "usb:0"}
    refs = NodeConfig.model_validate(
        base(
            cameras=[{"inline": camera}, {"inline": camera}],
            model={"manifest": "m.json"},
        )
    ).cameras
    with pytest.raises(ValueError, match="repeated: \\['cam-1'\\]"):
        resolve_cameras(refs, tmp_path)


@pytest.mark.parametrize(
    ("outbox", "message"),
    [
        ({"path": "o.db", "ack_timeout_s": 60, "ack_timeout_max_s": 30}, "ack_timeout_max_s"),
        ({"path": "o.db", "ack_timeout_s": 0}, "ack_timeout_s"),
        ({"path": "o.db", "awaiting_ack_max": 0}, "awaiting_ack_max"),
        ({"path": "o.db", "ack_timeout": 5}, "ack_timeout"),
    ],
)
def test_bad_ack_settings_are_named(tmp_path: Path, outbox: object, message: str) -> None:
    data = base(mqtt={"host": "b", "allow_anonymous": True}, outbox=outbox)
    with pytest.raises(NodeConfigError, match=message):
        load_node_config(write(tmp_path, data))


def test_ack_settings_reach_the_delivery(tmp_path: Path) -> None:
    from edge.app import EdgeNode

    data = base(
        mqtt={"host": "127.0.0.1", "allow_anonymous": True, "session_expiry_s": 3600},
        outbox={"path": "o.db", "ack_timeout_s": 5, "ack_timeout_max_s": 40, "awaiting_ack_max": 9},
    )
    node = EdgeNode(load_node_config(write(tmp_path, data)), config_dir=tmp_path)
    try:
        policy = node.uplink.ack_policy
        assert (policy.timeout_s, policy.max_timeout_s, policy.window) == (5, 40, 9)
        assert [policy.wait_after(n) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 40, 40]
        assert node.uplink.link.options.session_expiry_s == 3600
    finally:
        node.outbox.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("site_id: [\n", "bad.yaml: not valid YAML at line 2, column 1: "),
        (
            "site_id: s\ndevice_id: d\nmqtt: {host: h, port: x, allow_anonymous: true}\n"
            "outbox: {path: o.db}\n",
            "bad.yaml: mqtt.port: Input should be a valid integer",
        ),
        ("site_id: s\ndevice_id: d\nmqtt: {host: h, allow_anonymous: true}\n", "outbox: required"),
        (
            "site_id: s\ndevice_id: d\nmqtt: {host: h, allow_anonymous: true}\n"
            "outbox: {path: o.db}\ncolour: red\n",
            "colour: unknown key",
        ),
    ],
)
def test_node_config_errors_are_one_line(tmp_path: Path, text: str, expected: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(NodeConfigError) as caught:
        load_node_config(bad)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(bad))
    assert expected in message


def test_shipped_demo_node_resolves_every_path_against_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = Path(__file__).resolve().parents[3] / "firmware_configs" / "nodes"
    monkeypatch.chdir(tmp_path)  # anywhere but the file's own folder
    config = load_node_config(shipped / "demo-local.yaml")
    assert config.cameras[0].inline is not None
    assert config.cameras[0].inline["source"] == str(shipped / "guanjia-demo" / "frames")
    assert config.outbox.path == shipped / "guanjia-demo" / "outbox.db"
    assert config.model is not None
    assert config.model.manifest.resolve() == (shipped / "../../models").resolve() / (
        "yolox_nano.manifest.json"
    )
