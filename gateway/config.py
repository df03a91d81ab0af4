"""Gateway settings: one pydantic-settings class, read from the environment and an env file.

`GatewaySettings` is the root; its sections are models of their own, each beside what it
configures: `mqtt` (`gateway.mqtt_settings`), `telemetry` (`gateway.telemetry.settings`),
`console` (`gateway.console.settings`), `models` (`gateway.rollouts.settings`), `residents`
(`gateway.residents.settings`).

Nothing here runs at import time: `GatewaySettings()` is built by the CLI (or a test) and handed
to `create_app(settings)`. Environment variables are prefixed ``GUANJIA_GATEWAY_`` (for example
``GUANJIA_GATEWAY_DATABASE_URL``); nested policy fields use ``__`` as the delimiter.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as _SourceError

from gateway.console.settings import ConsoleSettings
from gateway.mqtt_settings import MqttSettings
from gateway.residents.settings import ResidentSettings
from gateway.rollouts.settings import ModelRegistrySettings
from gateway.sla import DEFAULT_POLICIES, CategoryPolicy, TicketCategory
from gateway.telemetry.settings import TelemetrySettings

MIN_JWT_SECRET_BYTES = 32
"""HS256 wants a key as long as its hash output (RFC 7518 §3.2)."""


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
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    models: ModelRegistrySettings = Field(default_factory=ModelRegistrySettings)
    telemetry_tick_s: float = Field(
        default=1.0, gt=0, le=60, description="Period of the sensor offline / cut-off check."
    )
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
    stream_max_per_user: int = Field(
        default=8,
        ge=1,
        le=1000,
        description="Open live streams (GET /api/stream and /console/stream together) one "
        "user may hold on this replica; one more is refused with 429.",
    )
    stream_max_total: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="Open live streams on this replica, all users together; one more is "
        "refused with 429.",
    )
    stream_recheck_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="How often an open stream re-reads its user (one primary-key read) and "
        "ends once the user is disabled, gone, or has another role or other sites.",
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
    processed_retention_s: float = Field(
        default=30 * 24 * 3600.0,
        ge=24 * 3600.0,
        description="How long committed message ids are remembered for dedup. An edge node "
        "re-sends until acked, so this must outlast the longest outage a node may ride out "
        "(its outbox holds rows for as long as it is offline).",
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
    sites_dir: Path | None = Field(
        default=None,
        description="Directory of <site_id>.yaml site files: places for resident QR codes, "
        "patrol rounds (docs/residents.md, docs/rounds.md). None: no resident reports, no rounds.",
    )
    residents: ResidentSettings = Field(
        default_factory=ResidentSettings, description="Public resident report routes."
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


ENV_PREFIX = "GUANJIA_GATEWAY_"
SETTINGS_DOC = "docs/gateway-settings.md"


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown setting (the settings are listed in {SETTINGS_DOC})"
        loc = [str(part) for part in error["loc"]]
        if loc and loc[0].upper().startswith(ENV_PREFIX):  # a key of the env file, verbatim
            loc = loc[0].upper().removeprefix(ENV_PREFIX).lower().split("__") + loc[1:]
        # A nested model's cross-field rule names its own field ("mqtt.client_id: …").
        named = re.match(r"^([a-z_]+(?:\.[a-z_]+)+): (.*)$", message)
        if named:
            loc, message = named.group(1).split("."), named.group(2)
        if loc:
            problems.append(f"GUANJIA_GATEWAY_{'__'.join(loc).upper()}: {message}")
        else:  # a cross-field rule names its variable itself
            problems.append(message)
    return "; ".join(problems)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """``GUANJIA_GATEWAY_*`` variables that name no setting (pydantic-settings would ignore
    them silently: a typo would run the gateway on a default)."""
    known = {name.upper() for name in GatewaySettings.model_fields}
    return sorted(
        name
        for name in environ
        if name.startswith(ENV_PREFIX) and name.removeprefix(ENV_PREFIX).split("__")[0] not in known
    )


def load_settings(env_file: Path | None = None, **overrides: Any) -> GatewaySettings:
    """Settings from explicit overrides, then the environment, then an optional env file
    of ``GUANJIA_GATEWAY_*`` lines; SettingsError (one line) if they are not valid."""
    unknown = unknown_variables(os.environ)
    if unknown:
        raise SettingsError(
            "; ".join(
                f"{name}: unknown setting (the settings are listed in {SETTINGS_DOC})"
                for name in unknown
            )
        )
    if env_file is not None and not env_file.is_file():
        raise SettingsError(f"--env-file {env_file}: no such file")
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
