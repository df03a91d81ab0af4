"""Gateway settings: one pydantic-settings class, read from the environment and an env file.

Nothing here runs at import time: `GatewaySettings()` is built by the CLI (or a test) and handed
to `create_app(settings)`. Environment variables are prefixed ``GUANJIA_GATEWAY_`` (for example
``GUANJIA_GATEWAY_DATABASE_URL``); nested policy fields use ``__`` as the delimiter.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.sla import DEFAULT_POLICIES, CategoryPolicy, TicketCategory


class MqttSettings(BaseModel):
    """How the ingest connects to the broker."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="Broker host name.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker TCP port.")
    username: str | None = Field(default=None, description="Gateway MQTT account.")
    password: SecretStr | None = Field(default=None, description="Its password (never logged).")
    client_id: str = Field(
        default="guanjia-gateway-1",
        description="Persistent-session id: unique per replica, stable across restarts.",
    )
    share_group: str | None = Field(
        default="guanjia",
        description="Shared-subscription group ($share/<group>/...); None subscribes plainly.",
    )
    topic_filter: str = Field(
        default="guanjia/v1/+/+/#", description="What the gateway ingests (before $share)."
    )
    keepalive_s: int = Field(default=30, ge=5, description="MQTT keepalive.")
    reconnect_s: float = Field(default=1.0, gt=0, description="Pause before reconnecting.")
    batch_max: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="Most messages committed in one transaction (the broker's limit on "
        "unacknowledged QoS 1 messages per client can cap a batch too).",
    )
    batch_linger_s: float = Field(
        default=0.0,
        ge=0,
        le=0.1,
        description="Wait this long for more messages before committing a short batch.",
    )

    @property
    def subscription(self) -> str:
        """The filter actually subscribed: shared when a group is set."""
        if self.share_group:
            return f"$share/{self.share_group}/{self.topic_filter}"
        return self.topic_filter


class GatewaySettings(BaseSettings):
    """Everything `create_app` needs. Defaults give a working single-machine SQLite gateway."""

    model_config = SettingsConfigDict(
        env_prefix="GUANJIA_GATEWAY_",
        env_nested_delimiter="__",
        env_file=None,
        extra="forbid",
    )

    database_url: str = Field(
        default="sqlite:///guanjia-gateway.db",
        description="SQLAlchemy URL; postgresql:// is normalised to postgresql+psycopg://.",
    )
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    ingest_enabled: bool = Field(default=True, description="Run the MQTT ingest task.")
    jwt_secret: SecretStr | None = Field(
        default=None, description="HS256 signing key for API tokens; required unless demo."
    )
    jwt_ttl_s: int = Field(default=8 * 3600, gt=0, description="API token lifetime.")
    demo: bool = Field(
        default=False,
        description="Embedded demo: anonymous broker allowed and a random JWT key if none.",
    )
    login_attempts: int = Field(default=5, ge=1, description="Failed logins allowed per window.")
    login_window_s: float = Field(default=300.0, gt=0, description="Login rate-limit window.")
    heartbeat_grace: float = Field(
        default=3.0, gt=1, description="A device is offline after this many missed intervals."
    )
    default_heartbeat_interval_s: float = Field(
        default=30.0, gt=0, description="Interval assumed before a device's first heartbeat."
    )
    sla_tick_s: float = Field(default=5.0, gt=0, description="SLA/escalation loop period.")
    webhook_tick_s: float = Field(default=1.0, gt=0, description="Webhook delivery loop period.")
    webhook_timeout_s: float = Field(default=5.0, gt=0, description="One webhook POST timeout.")
    webhook_max_attempts: int = Field(default=8, ge=1, description="Attempts before giving up.")
    stream_poll_s: float = Field(
        default=0.25,
        gt=0,
        description="How often the stream reads the shared change feed for other replicas' "
        "changes (this replica's own are pushed at once).",
    )
    cooldown_s: float = Field(
        default=600.0,
        ge=0,
        description="A new event within this long of a ticket's auto-resolution reopens it.",
    )
    # Ingest retention and per-device quotas: what one device can make the gateway store.
    dead_letter_retention_s: float = Field(
        default=7 * 24 * 3600.0, gt=0, description="Dead letters are deleted after this long."
    )
    dead_letters_kept_per_device: int = Field(
        default=1000, ge=1, description="Only the newest this many dead letters per device."
    )
    dead_letters_per_device_per_minute: int = Field(
        default=60,
        ge=1,
        description="Dead letters stored per device per minute; beyond, only a counter grows.",
    )
    snapshot_orphan_ttl_s: float = Field(
        default=3600.0,
        gt=0,
        description="A snapshot no event took as evidence is deleted after this long.",
    )
    snapshot_bytes_per_device_per_hour: int = Field(
        default=128 * 1024 * 1024,
        ge=1024 * 1024,
        description="Snapshot bytes stored per device per hour; beyond, snapshots are dropped.",
    )
    policies: dict[TicketCategory, CategoryPolicy] = Field(
        default_factory=lambda: dict(DEFAULT_POLICIES),
        description="Per-category SLA policy; categories left out keep their defaults.",
    )

    @model_validator(mode="after")
    def _complete(self) -> GatewaySettings:
        merged = dict(DEFAULT_POLICIES)
        merged.update(self.policies)
        self.policies = merged
        if self.jwt_secret is None:
            if not self.demo:
                raise ValueError("jwt_secret is required (GUANJIA_GATEWAY_JWT_SECRET) unless demo")
            self.jwt_secret = SecretStr(secrets.token_urlsafe(32))
        return self

    def signing_key(self) -> str:
        """The JWT key (validated present)."""
        assert self.jwt_secret is not None
        return self.jwt_secret.get_secret_value()


def load_settings(env_file: Path | None = None, **overrides: Any) -> GatewaySettings:
    """Settings from explicit overrides, then the environment, then an optional env file
    of ``GUANJIA_GATEWAY_*`` lines."""
    return GatewaySettings(_env_file=env_file, **overrides)
