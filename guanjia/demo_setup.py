"""What the demo sets up before it runs: accounts, broker config, clips, camera and node configs.

The pure builders (`broker_config`, `scale_camera_config`, `node_config`, `demo_scenarios`)
take everything as arguments and are tested on their own; `provision` writes the gateway database
and the broker's password and ACL files with the same code `guanjia device add` uses, so the
demo's edge node logs in with its own per-device credentials and may publish only under its own
topics, as in the field. Only the demo generates passwords and prints them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guanjia import scene_clips, scenes

SITE_ID = "demo"
DEVICE_ID = "edge-demo-01"
GRID_ID = "grid-1"
GATEWAY_MQTT_USER = "demo-gateway"
OPERATOR = "demo-operator"
BUTLER = "wang.butler"
SUPERVISOR = "zhao.supervisor"
ROSTER_HOURS = 8.0

LANE_CAMERA = "cam-lane"
CABIN_CAMERA = "cam-lift"
ZONES = ("no-parking-a", "fire-lane-1", "cabin")
CLIP_FPS = scene_clips.FPS

# Keys of a camera config that are not durations although they end in "_s".
_NOT_DURATIONS = frozenset({"reconnect"})


@dataclass(frozen=True)
class DemoSecrets:
    """Generated passwords (never written to a log; printed once by the demo)."""

    operator_password: str = field(repr=False)
    butler_password: str = field(repr=False)
    gateway_mqtt_password: str = field(repr=False)
    device_password: str = field(repr=False)

    @classmethod
    def generate(cls) -> DemoSecrets:
        """Fresh random passwords (URL-safe, 16 characters or more)."""
        return cls(*(secrets.token_urlsafe(12) for _ in range(4)))


# -- scenarios -------------------------------------------------------------------------------


def lane_scenario() -> scene_clips.Scenario:
    """The village lane: one car parks in the no-parking zone and leaves after 12 s; another
    stops in the fire lane and stays."""
    y = scenes.PARK_SPOT[1]
    parks = [(0.0, -150.0, y), (2.0, scenes.PARK_SPOT[0], y), (14.0, 110.0, y), (16.0, -150.0, y)]
    blocks = [(0.0, 640.0, y), (3.0, 345.0, y), (20.0, 345.0, y)]
    return scene_clips.Scenario(
        "demo_lane",
        20.0,
        [scene_clips.Path2D("car", parks), scene_clips.Path2D("car", blocks)],
        camera="lane",
    )


def demo_scenarios() -> list[scene_clips.Scenario]:
    """The clips the demo plays: the lane (parking, fire lane) and the lift cabin (motorcycle)."""
    return [lane_scenario(), scenes.moto_enters_cabin()]


# -- camera and node configs -----------------------------------------------------------------


def _scale(value: Any, factor: float, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: v if k in _NOT_DURATIONS else _scale(v, factor, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_scale(item, factor, key) for item in value]
    if key.endswith("_s") and isinstance(value, int | float) and not isinstance(value, bool):
        return value / factor
    return value


def scale_camera_config(config: dict[str, Any], speed: float) -> dict[str, Any]:
    """The camera config for a clip played `speed` times faster than real time.

    Every duration (a key ending in ``_s``: dwell, stationary, keep-alive, lost-track times) is
    divided by `speed` and the frame rate multiplied by it, so the rules see the same story in
    less wall-clock time. Defaults the config leaves out are made explicit first. Stream
    reconnect timings are left alone: they are about the network, not the scene.
    """
    from edge.camera_config import parse_camera_config

    full = parse_camera_config(config, origin="<demo camera>").model_dump(mode="json")
    if speed == 1.0:
        return full
    scaled = _scale(full, speed)
    scaled["fps"] = full["fps"] * speed
    return dict(parse_camera_config(scaled, origin="<demo camera>").model_dump(mode="json"))


def camera_configs(speed: float, urls: dict[str, str]) -> list[dict[str, Any]]:
    """The demo cameras, reading their streams (`urls` by camera id), scaled to `speed`."""
    configs = []
    for scenario in demo_scenarios():
        base = scenes.camera_config(scenario)
        base["source"] = urls[base["camera_id"]]
        configs.append(scale_camera_config(base, speed))
    return configs


def node_config(
    *,
    workdir: Path,
    broker_port: int,
    password_file: Path,
    model_dir: Path,
    manifest: Path,
    cameras: list[dict[str, Any]],
    protocol: str = "5",
) -> dict[str, Any]:
    """NODE.yaml of the demo's edge node: per-device login, short heartbeat, inline cameras;
    `protocol` "3.1.1" for the embedded broker."""
    return {
        "site_id": SITE_ID,
        "device_id": DEVICE_ID,
        "config_version": "demo-1",
        "data_dir": str(workdir / "edge"),
        "mqtt": {
            "host": "127.0.0.1",
            "port": broker_port,
            "password_file": str(password_file),
            "keepalive_s": 10,
            "reconnect_min_s": 0.5,
            "reconnect_max_s": 5.0,
            "protocol": protocol,
        },
        "outbox": {"path": str(workdir / "edge" / "outbox.db")},
        "heartbeat_interval_s": 2,
        "model": {"dir": str(model_dir), "manifest": str(manifest)},
        "cameras": [{"inline": camera} for camera in cameras],
        "actions": [{"type": "log"}],
    }


# -- broker ----------------------------------------------------------------------------------


def broker_config(*, port: int, passwd_file: Path, acl_file: Path, as_root: bool) -> str:
    """mosquitto.conf for the demo broker: loopback only, password file and per-device ACL.

    It logs to stderr, which the demo sends to ``logs/mosquitto.log`` with the start-up errors.
    """
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous false",
        f"password_file {passwd_file}",
        f"acl_file {acl_file}",
        # As in every broker config we ship: the client id is the username, so no login can
        # take over another's session.
        "use_username_as_clientid true",
        # As in the site broker's config: no Nagle, or a PUBLISH to a client that last got
        # a PUBACK waits ~40 ms for its delayed TCP ACK (docs/gateway.md "Latency").
        "set_tcp_nodelay true",
        "persistence false",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages true",
    ]
    if as_root:
        # Started as root Mosquitto switches to the `mosquitto` user, which cannot read the
        # demo's private work dir; the demo broker listens on loopback only, so it stays.
        lines.append("user root")
    return "\n".join(lines) + "\n"


# -- provisioning ----------------------------------------------------------------------------


def provision(
    database_url: str, passwd_file: Path, acl_file: Path, demo: DemoSecrets, now: float
) -> None:
    """Create the schema, the console users, the grid and its roster, the gateway's and the
    edge node's broker accounts, and write Mosquitto's password file and ACL."""
    from gateway.auth import Role, hash_password
    from gateway.models import GridPublic, ShiftPublic
    from gateway.provisioning import (
        BrokerAccount,
        gateway_accounts,
        mosquitto_hash,
        write_broker_files,
    )
    from gateway.store import Store, migrate

    migrate(database_url)
    store = Store(database_url)
    try:
        store.users.create_user(
            OPERATOR, hash_password(demo.operator_password), Role.OPERATOR, [SITE_ID]
        )
        store.users.create_user(BUTLER, hash_password(demo.butler_password), Role.WORKER, [SITE_ID])
        store.grids.upsert_grid(
            GridPublic(
                grid_id=GRID_ID,
                site_id=SITE_ID,
                name="Demo grid 1",
                supervisor=SUPERVISOR,
                zones=list(ZONES),
            )
        )
        store.grids.add_shift(
            ShiftPublic(
                grid_id=GRID_ID,
                username=BUTLER,
                starts_at=now - 60,
                ends_at=now + ROSTER_HOURS * 3600,
            )
        )
        store.devices.upsert_device(
            DEVICE_ID, SITE_ID, "camera", location="demo lane and lift", grid_id=GRID_ID, now=now
        )
        gateway_hash = mosquitto_hash(demo.gateway_mqtt_password)
        for name in gateway_accounts(GATEWAY_MQTT_USER):  # its ingest workers' too
            store.devices.set_mqtt_credential(name, gateway_hash, "gateway", None)
        store.devices.set_mqtt_credential(
            DEVICE_ID, mosquitto_hash(demo.device_password), "device", SITE_ID
        )
        accounts = [
            BrokerAccount(a.username, a.password_hash, a.role, a.site_id)
            for a in store.devices.mqtt_accounts()
        ]
    finally:
        store.close()
    write_broker_files(accounts, passwd_file, acl_file)


def write_clips(folder: Path) -> dict[str, Path]:
    """Render every demo scenario as a folder of JPEG frames; folders by camera id."""
    out: dict[str, Path] = {}
    for scenario in demo_scenarios():
        camera_id = scenes.camera_config(scenario)["camera_id"]
        out[camera_id] = scene_clips.write_clip(scenario, folder / camera_id)
    return out
