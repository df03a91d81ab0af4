"""The `models` section of the gateway settings (``GUANJIA_GATEWAY_MODELS__*``): the model
registry and rollouts (docs/models.md)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ModelRegistrySettings(BaseModel):
    """The model registry and rollouts (docs/models.md)."""

    model_config = ConfigDict(extra="forbid")

    store_dir: Path = Field(
        default=Path("guanjia-models"), description="Where artifacts are kept, by sha256."
    )
    trusted_keys: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="Public keys (ed25519:<base64>) an upload must be signed by; empty: "
        "uploads are refused.",
    )
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="This gateway's base URL as edge nodes reach it (download links); "
        "required to start a rollout.",
    )
    max_artifact_bytes: int = Field(
        default=300 * 1024 * 1024, ge=1024, description="Largest artifact an upload may be."
    )
    link_ttl_s: int = Field(
        default=3600,
        ge=60,
        le=7 * 86400,
        description="Shortest lifetime of a device's download link; a link lives as long as "
        "its install command (the rollout's device_timeout_s) when that is longer.",
    )
    tick_s: float = Field(default=2.0, gt=0, le=300, description="Rollout planning period.")

    @field_validator("trusted_keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        from guanjia.artifacts import parse_public_key

        for entry in value:
            parse_public_key(entry)
        return value
