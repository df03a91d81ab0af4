"""The API's model-registry and rollout records (requests and responses)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gateway.rollouts.plan import DeviceState, RolloutPolicy, RolloutState


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ArtifactPublic(_Record):
    """A signed artifact in the registry."""

    sha256: str
    name: str
    version: str
    size: int
    model_sha256: str
    key_id: str
    min_edge_version: str
    created: float
    uploaded_by: str
    uploaded_at: float


class RolloutCreate(_Record):
    """Start a rollout of an artifact to a site's devices, or to a group of them."""

    artifact_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    site_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    device_ids: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=10_000,
        description="A device group; absent: every device of the site of kind `kind`.",
    )
    kind: str = Field(default="camera", min_length=1, max_length=32)
    policy: RolloutPolicy = Field(default_factory=RolloutPolicy)


class RolloutDevicePublic(_Record):
    """One device's place in a rollout."""

    device_id: str
    wave: int
    state: DeviceState
    reason: str | None
    commanded_at: float | None
    running: str | None
    updated_at: float


class RolloutPublic(_Record):
    """A rollout and, on the detail route, its devices."""

    rollout_id: str
    site_id: str
    artifact_sha256: str
    state: RolloutState
    wave: int
    waves: int
    policy: RolloutPolicy
    reason: str | None
    created_by: str
    created_at: float
    updated_at: float
    counts: dict[str, int] = Field(default_factory=dict, description="Devices per state.")
    devices: list[RolloutDevicePublic] | None = None
