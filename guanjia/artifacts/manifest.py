"""artifact.json: what an artifact holds and what its model must do on the reference frames."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from contract import Manifest

ARTIFACT_SCHEMA = "guanjia.model_artifact/1"
_SHA256 = r"^[0-9a-f]{64}$"
_VERSION = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?")

Sha256 = Annotated[str, StringConstraints(pattern=_SHA256)]
FRAME_NAME = r"^frames/[0-9]{3}\.jpg$"
MAX_FRAMES = 16


def version_tuple(text: str) -> tuple[int, int, int]:
    """The leading ``major.minor.patch`` of a version string (missing parts are 0).

    ValueError when it does not start with a number.
    """
    match = _VERSION.match(text)
    if match is None:
        raise ValueError(f"version {text!r} does not start with a number")
    major, minor, patch = (int(part) if part else 0 for part in match.groups())
    return major, minor, patch


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpectedDetection(_Strict):
    """One detection a reference frame must decode to (box in pixels of the frame)."""

    class_name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    score: Annotated[float, Field(ge=0, le=1)]
    box: tuple[float, float, float, float] = Field(description="[x1, y1, x2, y2] pixels.")


class ReferenceFrame(_Strict):
    """A photo shipped in the artifact and the detections the model must find on it."""

    file: Annotated[str, StringConstraints(pattern=FRAME_NAME)]
    sha256: Sha256
    size: Annotated[int, Field(gt=0)]
    detections: list[ExpectedDetection] = Field(max_length=200)


class SelfTestSpec(_Strict):
    """How close the node's own run must come to the expected detections, and how fast."""

    min_iou: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.5, description="A found box matches an expected one of its class at this IoU."
    )
    score_tolerance: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.15, description="Largest score difference of a matched pair."
    )
    min_recall: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.8, description="Share of expected detections (score >= 0.5) that must match."
    )
    latency_budget_ms: Annotated[float, Field(gt=0, le=60_000)] = Field(
        default=2000.0, description="Median inference time per frame on the node, at most."
    )


class ArtifactManifest(_Strict):
    """The signed description of one artifact (artifact.json)."""

    SCHEMA: ClassVar[str] = ARTIFACT_SCHEMA

    schema_: Literal["guanjia.model_artifact/1"] = Field(
        default="guanjia.model_artifact/1", alias="schema"
    )
    model: Manifest = Field(description="The detector manifest: file, sha256, tensors, classes.")
    size: Annotated[int, Field(gt=0)] = Field(description="model.onnx bytes.")
    min_edge_version: Annotated[str, StringConstraints(pattern=r"^\d+(\.\d+){0,2}$")] = "0.1.0"
    created: Annotated[float, Field(ge=0)] = Field(description="Seconds since the epoch (UTC).")
    key_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")] = Field(
        description="Id of the key that signed this manifest (informative; pinning decides)."
    )
    reference: list[ReferenceFrame] = Field(min_length=1, max_length=MAX_FRAMES)
    selftest: SelfTestSpec = Field(default_factory=SelfTestSpec)

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    @model_validator(mode="after")
    def _members(self) -> ArtifactManifest:
        if self.model.file != "model.onnx":
            raise ValueError("model.file must be 'model.onnx'")
        names = [frame.file for frame in self.reference]
        if len(set(names)) != len(names):
            raise ValueError("reference frames repeat a file name")
        unknown = {d.class_name for f in self.reference for d in f.detections} - set(
            self.model.class_names
        )
        if unknown:
            raise ValueError(f"reference detections name unknown classes: {sorted(unknown)}")
        return self

    @property
    def name(self) -> str:
        """The model's name."""
        return self.model.name

    @property
    def version(self) -> str:
        """The model's version."""
        return self.model.version
