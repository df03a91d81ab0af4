"""A ``model_update`` command as the node sees it: its arguments, the node's reports, and
whether a verified artifact is the one the command named and can run on this node (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from edge.model_update.state import ModelSlot, ReportState
from guanjia.artifacts import ArtifactManifest, version_tuple


class ModelUpdateArgs(BaseModel):
    """Arguments of a ``model_update`` command."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["install", "revert", "cancel"] = "install"
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2000)] | None = None
    size: Annotated[int, Field(gt=0)] | None = None
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    version: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    probation_s: Annotated[float, Field(ge=0, le=7 * 86400)] = 600.0

    @model_validator(mode="after")
    def _install_needs(self) -> ModelUpdateArgs:
        if self.action == "install" and None in (self.url, self.size, self.name, self.version):
            raise ValueError("install needs url, size, name and version")
        return self


@dataclass(frozen=True)
class Report:
    """One state transition of a job, for the gateway."""

    command_id: str
    sha256: str
    state: ReportState
    seq: int
    reason: str | None
    running: ModelSlot | None


def refusal(
    manifest: ArtifactManifest, name: str, version: str, software_version: str
) -> str | None:
    """Why a verified artifact must not be installed for this command, or None."""
    if (manifest.name, manifest.version) != (name, version):
        return f"artifact is {manifest.name} {manifest.version}, the command says {name} {version}"
    try:
        too_old = version_tuple(software_version) < version_tuple(manifest.min_edge_version)
    except ValueError:
        too_old = False
    if too_old:
        return f"needs node software {manifest.min_edge_version}, this node runs {software_version}"
    return None
