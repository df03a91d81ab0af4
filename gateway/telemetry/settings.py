"""Telemetry settings (``GUANJIA_GATEWAY_TELEMETRY__*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from gateway.telemetry.profiles import PROFILES_DIR
from gateway.telemetry.sqlite_store import DAY_S


class TelemetrySettings(BaseModel):
    """Where readings are stored and how the InfluxDB v2 write path behaves."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Store readings and run the sensor rules.")
    path: Path | None = Field(
        default=None,
        description="The embedded store's own file; default: beside a SQLite gateway database "
        "(<name>.telemetry.db), else guanjia-telemetry.db in the working directory.",
    )
    profiles_dir: Path = Field(default=PROFILES_DIR, description="Device profile YAML files.")
    raw_retention_days: float = Field(default=7, gt=0, description="Raw points kept.")
    rollup_retention_days: float = Field(default=90, gt=0, description="Minute rollups kept.")
    derive_interval_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="How often the embedded store moves appended readings into its series "
        "index and latest values. Charts and retention do it first anyway; a longer period "
        "moves more readings of a series at once, for less CPU a reading (docs/sensors.md, "
        "Stores).",
    )
    derive_after_points: int = Field(
        default=1_000_000,
        ge=1000,
        description="… or sooner, once this many readings were appended since the last move "
        "(a flood: bounds the append file and how long one move takes; smaller moves cost "
        "more CPU a reading, docs/sensors.md, Stores).",
    )
    influx_url: str | None = Field(default=None, description="InfluxDB v2 (or compatible) URL.")
    influx_org: str | None = Field(default=None, description="InfluxDB organisation.")
    influx_bucket: str | None = Field(default=None, description="InfluxDB bucket.")
    influx_token: SecretStr | None = Field(default=None, description="InfluxDB API token.")
    influx_batch_size: int = Field(default=5000, ge=1, le=100_000)
    influx_flush_interval_s: float = Field(default=1.0, gt=0, le=60)
    influx_max_buffer: int = Field(default=200_000, ge=1000, description="Points held while away.")
    lease_s: float = Field(
        default=15.0,
        ge=1,
        le=300,
        description="The rule owner's lease: one replica runs the sensor rules and holds the "
        "telemetry subscription, renewing every third of this; when it dies another takes "
        "over within about 4/3 of it (docs/sensors.md, 'One rule owner').",
    )

    @model_validator(mode="after")
    def _influx_all_or_none(self) -> TelemetrySettings:
        given = [self.influx_url, self.influx_org, self.influx_bucket, self.influx_token]
        if any(v is not None for v in given) and not all(v is not None for v in given):
            raise ValueError(
                "telemetry.influx_url, influx_org, influx_bucket and influx_token: set all four "
                "or none"
            )
        return self

    def store_path(self, database_url: str) -> Path:
        """The embedded store's file for a gateway on `database_url`."""
        if self.path is not None:
            return self.path
        prefix = "sqlite:///"
        if database_url.startswith(prefix) and len(database_url) > len(prefix):
            db = Path(database_url[len(prefix) :].split("?", maxsplit=1)[0])
            if db.name not in ("", ":memory:"):
                return db.with_name(f"{db.stem}.telemetry.db")
        return Path("guanjia-telemetry.db")

    @property
    def raw_retention_s(self) -> float:
        """Raw window in seconds."""
        return self.raw_retention_days * DAY_S

    @property
    def rollup_retention_s(self) -> float:
        """Rollup window in seconds."""
        return self.rollup_retention_days * DAY_S
