"""The node configuration (``NODE.yaml``): identity, broker, outbox, heartbeat, cameras, actions.

Pydantic with ``extra="forbid"`` everywhere, so a typo in a field name is an error at start-up,
not a silently ignored setting. Secrets are never in the file itself: the MQTT password comes
from a file (``password_file``, e.g. a systemd credential) or an environment variable
(``password_env``), and is held as a `SecretStr` so it never appears in a repr or a log line.

`RuntimeConfig` is the part a ``config`` command may replace while the node runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from contract.messages import Segment
from edge.actions import ActionName
from edge.config_errors import validation_problem, yaml_problem
from edge.config_model import ConfigModel


class TlsSettings(ConfigModel):
    """TLS to the broker. Without `ca_file` the system trust store is used."""

    ca_file: Path | None = Field(default=None, description="CA bundle that signed the broker.")
    cert_file: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    key_file: Path | None = Field(default=None, description="Key of the client certificate.")

    @model_validator(mode="after")
    def _pair(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class MqttSettings(ConfigModel):
    """How the node reaches the broker. The client id is always the device id."""

    host: str = Field(description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535, description="1883 plain, 8883 TLS.")
    username: str | None = Field(
        default=None, description="Per-device user; defaults to the device id."
    )
    password_file: Path | None = Field(
        default=None, description="File whose first line is the password (mode 0600)."
    )
    password_env: str | None = Field(
        default=None, description="Environment variable holding the password."
    )
    allow_anonymous: bool = Field(
        default=False, description="Only for the embedded demo broker: connect without a user."
    )
    tls: TlsSettings | None = Field(default=None, description="Enable TLS with these files.")
    keepalive_s: int = Field(
        default=30, ge=1, le=3600, description="The broker sends the LWT after 1.5x this."
    )
    reconnect_min_s: float = Field(default=1.0, gt=0, description="First reconnect delay.")
    reconnect_max_s: float = Field(default=30.0, gt=0, description="Reconnect back-off cap.")
    inflight: int = Field(
        default=64, ge=1, le=1000, description="Messages on the wire awaiting the broker's PUBACK."
    )
    session_expiry_s: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        le=2**32 - 1,
        description="How long the broker keeps the node's session (subscriptions, queued "
        "commands) while it is offline; MQTT 5 Session Expiry Interval.",
    )
    protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description='MQTT version. "3.1.1" only for the embedded broker (amqtt): no session '
        "expiry and no PUBACK reason codes, so a publish the ACL refuses looks delivered "
        "(docs/embedded-broker.md).",
    )

    @model_validator(mode="after")
    def _credentials(self) -> MqttSettings:
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("give password_file or password_env, not both")
        if not self.allow_anonymous and self.password_file is None and self.password_env is None:
            raise ValueError(
                "per-device credentials are required: set password_file or password_env "
                "(allow_anonymous is for the embedded demo only)"
            )
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self

    def password(self) -> SecretStr | None:
        """Read the password from its file or variable; raise ValueError naming the source."""
        if self.password_file is not None:
            try:
                text = self.password_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"cannot read password_file {self.password_file}: {exc}") from exc
            value = text.splitlines()[0] if text else ""
            if not value:
                raise ValueError(f"password_file {self.password_file} is empty")
            return SecretStr(value)
        if self.password_env is not None:
            env = os.environ.get(self.password_env)
            if not env:
                raise ValueError(f"environment variable {self.password_env} is not set")
            return SecretStr(env)
        return None


class OutboxSettings(ConfigModel):
    """Where the durable outbox lives and how big it may grow."""

    path: Path = Field(description="SQLite file; put it on the data partition.")
    max_rows: int = Field(default=100_000, ge=10, description="Row bound (see drop policy).")
    max_mb: float = Field(default=512.0, gt=0, description="Payload bound in MiB.")
    synchronous: Literal["full", "normal"] = Field(
        default="full", description="full survives power loss; normal only process crashes."
    )
    ack_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Re-send a message the gateway has not acked this long after sending it "
        "(while no Ack at all arrives, only the oldest is re-sent, as a probe).",
    )
    ack_timeout_max_s: float = Field(
        default=600.0,
        gt=0,
        le=86400,
        description="Each re-send (or probe of a silent gateway) waits twice as long as the "
        "last, up to this.",
    )
    awaiting_ack_max: int = Field(
        default=256,
        ge=1,
        le=100_000,
        description="Messages sent and not acked by the gateway at once; the rest wait on disk.",
    )

    @model_validator(mode="after")
    def _timeouts(self) -> OutboxSettings:
        if self.ack_timeout_max_s < self.ack_timeout_s:
            raise ValueError("ack_timeout_max_s must be >= ack_timeout_s")
        return self


class ModelSettings(ConfigModel):
    """Which detector to load (threads are per camera: ``detector_threads`` in its config)."""

    dir: Path | None = Field(
        default=None, description="Weights directory; else GUANJIA_MODEL_DIR or ../shared/models."
    )
    manifest: Path = Field(description="Model manifest JSON (guanjia.model_manifest/1).")


class ModelUpdateSettings(ConfigModel):
    """Signed model updates (``model_update`` commands); absent: the node refuses them."""

    trusted_keys: list[
        Annotated[str, StringConstraints(pattern=r"^ed25519:[A-Za-z0-9+/=]{44}$")]
    ] = Field(min_length=1, max_length=8, description="Pinned public keys (ed25519:<base64>).")
    download_timeout_s: float = Field(default=30.0, gt=0, le=600)
    max_model_mb: float = Field(default=256.0, gt=0, le=4096)
    fps_floor: float = Field(
        default=0.5, gt=0, le=1, description="Roll back when fps falls below this share."
    )
    inference_factor: float = Field(
        default=3.0, gt=1, le=100, description="Roll back when inference time grows this much."
    )

    @field_validator("trusted_keys")
    @classmethod
    def _keys_decode(cls, value: list[str]) -> list[str]:
        # The pattern admits 44 base64 characters that are not 32 bytes; refuse them here
        # (one config error), not as a traceback when the node builds its updater.
        from guanjia.artifacts import parse_public_key

        for entry in value:
            parse_public_key(entry)
        return value


class LogActionSettings(ConfigModel):
    """Log local actions (always safe; the default)."""

    type: Literal["log"] = "log"


class MqttActionSettings(ConfigModel):
    """Publish local actions as JSON to a controller's topic on the node's broker."""

    type: Literal["mqtt"] = "mqtt"
    topic: str = Field(min_length=1, description="E.g. the elevator controller's command topic.")
    qos: Literal[0, 1] = 1


class HttpActionSettings(ConfigModel):
    """POST local actions as JSON to a controller's HTTP endpoint."""

    type: Literal["http"] = "http"
    url: Annotated[str, StringConstraints(pattern=r"^https?://")] = Field(
        description="http(s) URL of the controller."
    )
    timeout_s: float = Field(default=2.0, gt=0, le=30)
    token_env: str | None = Field(default=None, description="Env var with a bearer token.")
    queue_size: int = Field(default=32, ge=1, le=10_000)


ActionSettings = Annotated[
    LogActionSettings | MqttActionSettings | HttpActionSettings, Field(discriminator="type")
]


def _all_actions() -> list[ActionName]:
    return list(get_args(ActionName))


def _log_only() -> list[ActionSettings]:
    return [LogActionSettings()]


class CommandSettings(ConfigModel):
    """Who may command this node and what it may do."""

    allowed_issuers: list[str] = Field(
        default_factory=lambda: ["gateway", "operator:"],
        description="A command's issued_by must equal or start with one of these.",
    )
    allowed_actions: list[ActionName] = Field(
        default_factory=_all_actions,
        description="Actions an `actuate` command may fire here.",
    )
    action_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="How long an `actuate` waits for the broker or controller to confirm.",
    )


class CameraRef(ConfigModel):
    """A camera: a path to its YAML (relative to the node file) or the config inline."""

    path: Path | None = None
    inline: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one(self) -> CameraRef:
        if (self.path is None) == (self.inline is None):
            raise ValueError("a camera needs exactly one of path or inline")
        return self


class RuntimeConfig(ConfigModel):
    """What a ``config`` command may replace at run time, as a whole (never a partial patch)."""

    config_version: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    heartbeat_interval_s: float = Field(default=30.0, ge=1, le=3600)
    cameras: list[CameraRef] = Field(default_factory=list, max_length=16)


class NodeConfig(ConfigModel):
    """One edge node. Loaded from ``NODE.yaml`` by `load_node_config`."""

    site_id: Segment
    device_id: Segment = Field(description="Also the MQTT client id and default username.")
    config_version: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "0"
    data_dir: Path = Field(
        default=Path("/var/lib/guanjia"), description="Where runtime state (applied config) lives."
    )
    mqtt: MqttSettings
    outbox: OutboxSettings
    heartbeat_interval_s: float = Field(default=30.0, ge=1, le=3600)
    model: ModelSettings | None = Field(
        default=None, description="Required when the node has cameras."
    )
    cameras: list[CameraRef] = Field(default_factory=list, max_length=16)
    actions: list[ActionSettings] = Field(default_factory=_log_only)
    commands: CommandSettings = Field(default_factory=CommandSettings)
    model_updates: ModelUpdateSettings | None = Field(
        default=None, description="Accept signed model updates from the gateway."
    )

    @model_validator(mode="after")
    def _model_for_cameras(self) -> NodeConfig:
        if self.cameras and self.model is None:
            raise ValueError("cameras need a model section")
        return self

    @property
    def mqtt_username(self) -> str | None:
        """The broker user: explicit, else the device id; None when anonymous."""
        if self.mqtt.allow_anonymous and self.mqtt.username is None:
            return None
        return self.mqtt.username or self.device_id

    @property
    def runtime(self) -> RuntimeConfig:
        """The run-time-replaceable part of this configuration."""
        return RuntimeConfig(
            config_version=self.config_version,
            heartbeat_interval_s=self.heartbeat_interval_s,
            cameras=self.cameras,
        )


class NodeConfigError(ValueError):
    """A node configuration file that cannot be read or does not validate."""


def _resolve(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else (base / path)


def anchor_source(camera: dict[str, Any], base: Path) -> dict[str, Any]:
    """`camera` with a relative file or folder ``source`` made absolute against `base`."""
    from edge.camera_config import is_local_path

    source = camera.get("source")
    if is_local_path(source) and not Path(str(source)).is_absolute():
        return {**camera, "source": str(base / str(source))}
    return camera


def load_node_config(path: Path) -> NodeConfig:
    """Read and validate ``NODE.yaml``; relative paths are resolved against its directory.

    That includes an inline camera's ``source:`` when it is a file or folder (a camera YAML
    named by ``path`` resolves its own ``source`` against its own directory), so a node file
    works the same from any working directory. Errors are one line: file, field, problem.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NodeConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise NodeConfigError(f"{path}: {yaml_problem(exc)}") from exc
    if not isinstance(data, dict):
        raise NodeConfigError(f"{path}: top level must be a mapping")
    try:
        config = NodeConfig.model_validate(data)
    except ValidationError as exc:
        field, problem = validation_problem(exc, docs="docs/edge-uplink.md")
        raise NodeConfigError(f"{path}: {field or '(top level)'}: {problem}") from exc
    base = path.resolve().parent
    cameras = [
        camera.model_copy(update={"path": _resolve(base, camera.path)})
        if camera.path is not None
        else camera.model_copy(update={"inline": anchor_source(camera.inline or {}, base)})
        for camera in config.cameras
    ]
    mqtt = config.mqtt
    if mqtt.password_file is not None:
        mqtt = mqtt.model_copy(update={"password_file": _resolve(base, mqtt.password_file)})
    if mqtt.tls is not None:
        tls = mqtt.tls.model_copy(
            update={
                name: _resolve(base, value)
                for name in ("ca_file", "cert_file", "key_file")
                if (value := getattr(mqtt.tls, name)) is not None
            }
        )
        mqtt = mqtt.model_copy(update={"tls": tls})
    model = config.model
    if model is not None:
        model = model.model_copy(
            update={
                "manifest": _resolve(base, model.manifest),
                "dir": None if model.dir is None else _resolve(base, model.dir),
            }
        )
    return config.model_copy(
        update={
            "cameras": cameras,
            "mqtt": mqtt,
            "model": model,
            "outbox": config.outbox.model_copy(update={"path": _resolve(base, config.outbox.path)}),
            "data_dir": _resolve(base, config.data_dir),
        }
    )
