"""Gateway settings: one pydantic-settings class, read from the environment and an env file.

Nothing here runs at import time: `GatewaySettings()` is built by the CLI (or a test) and handed
to `create_app(settings)`. Environment variables are prefixed ``GUANJIA_GATEWAY_`` (for example
``GUANJIA_GATEWAY_DATABASE_URL``); nested policy fields use ``__`` as the delimiter.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as _SourceError

from gateway.sla import DEFAULT_POLICIES, CategoryPolicy, TicketCategory

MIN_JWT_SECRET_BYTES = 32
"""HS256 wants a key as long as its hash output (RFC 7518 §3.2)."""


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
        default=None,
        description="HS256 signing key for API tokens and stream tickets, at least "
        f"{MIN_JWT_SECRET_BYTES} bytes; required unless demo.",
    )
    jwt_ttl_s: int = Field(default=8 * 3600, gt=0, description="API token lifetime.")
    stream_ticket_ttl_s: int = Field(
        default=60,
        ge=5,
        le=600,
        description="Lifetime of a stream ticket (the only credential accepted in a URL, "
        "and only by GET /api/stream).",
    )
    demo: bool = Field(
        default=False,
        description="Embedded demo: anonymous broker allowed and a random JWT key if none.",
    )
    max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Largest request body on any route but photo uploads (413 above it, "
        "before the body is read).",
    )
    max_photo_bytes: int = Field(
        default=5 * 1024 * 1024, ge=1, description="Largest photo a ticket upload may carry."
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For "
        "names the client; empty: the peer address is the client.",
    )
    login_attempts: int = Field(
        default=5, ge=1, description="Failed logins per (user, address) per window, then 429."
    )
    login_address_attempts: int = Field(
        default=50, ge=1, description="Failed logins per address per window (any users)."
    )
    login_user_attempts: int = Field(
        default=20,
        ge=1,
        description="Failed logins per user per window (any addresses) before every further "
        "attempt for that user is slowed down (never refused).",
    )
    login_user_delay_s: float = Field(
        default=2.0, ge=0, le=30, description="The slow-down of a user past its cap."
    )
    login_window_s: float = Field(default=300.0, gt=0, description="Login rate-limit window.")
    login_tracked_max: int = Field(
        default=10_000,
        ge=100,
        description="Most keys each login counter remembers (oldest forgotten first).",
    )
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
    policies: dict[TicketCategory, CategoryPolicy] = Field(
        default_factory=lambda: dict(DEFAULT_POLICIES),
        description="Per-category SLA policy; categories left out keep their defaults.",
    )

    @field_validator("jwt_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # A short HS256 key can be brute-forced offline from any one token; an empty one
        # used to start a gateway whose every login failed with a 500.
        if value is not None and len(value.get_secret_value().encode()) < MIN_JWT_SECRET_BYTES:
            raise ValueError(
                f"must be at least {MIN_JWT_SECRET_BYTES} bytes (for example the output of "
                "`openssl rand -hex 32`)"
            )
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR network") from None
        return value

    @model_validator(mode="after")
    def _complete(self) -> GatewaySettings:
        merged = dict(DEFAULT_POLICIES)
        merged.update(self.policies)
        self.policies = merged
        if self.jwt_secret is None:
            if not self.demo:
                raise ValueError(
                    "GUANJIA_GATEWAY_JWT_SECRET: required unless demo (at least "
                    f"{MIN_JWT_SECRET_BYTES} bytes)"
                )
            self.jwt_secret = SecretStr(secrets.token_urlsafe(32))
        return self

    def signing_key(self) -> str:
        """The JWT key (validated present)."""
        assert self.jwt_secret is not None
        return self.jwt_secret.get_secret_value()


class SettingsError(ValueError):
    """Settings a gateway cannot run with; the message is one line per problem, naming the
    environment variable (``GUANJIA_GATEWAY_…: what is allowed``), never the value."""


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        loc = [str(part) for part in error["loc"]]
        if loc:
            problems.append(f"GUANJIA_GATEWAY_{'__'.join(loc).upper()}: {message}")
        else:  # a cross-field rule names its variable itself
            problems.append(message)
    return "; ".join(problems)


def load_settings(env_file: Path | None = None, **overrides: Any) -> GatewaySettings:
    """Settings from explicit overrides, then the environment, then an optional env file
    of ``GUANJIA_GATEWAY_*`` lines; SettingsError (one line) if they are not valid."""
    try:
        return GatewaySettings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    except _SourceError as exc:  # a list or object value that is not JSON
        found = re.search(r'field "(\w+)"', str(exc))
        name = found.group(1).upper() if found else "?"
        raise SettingsError(
            f'GUANJIA_GATEWAY_{name}: must be JSON (for a list: \'["a", "b"]\')'
        ) from None
