"""Camera configuration: source, frame rate, motion gate, tracker, zones and snapshot options.

One YAML file per camera (examples in ``firmware_configs/cameras/``). Every model forbids
unknown keys, so a typo fails loudly instead of silently running with a default. The zone
models live in `edge.zone_config` and its neighbours (re-exported here). `load_camera_config`
turns every problem into a `CameraConfigError` that names the file and the dotted field path.
"""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from contract.messages import Segment
from edge.config_errors import yaml_problem
from edge.config_model import ConfigModel
from edge.facade_calibration import FacadeCalibration, FacadeColumn, FacadeFloor
from edge.polygons import polygon_problem
from edge.zone_config import (
    DAY_S,
    ElevatorZone,
    FireLaneZone,
    IllegalParkingZone,
    LitterZone,
    Point,
    RuleKind,
    ThrownObjectZone,
    TimeWindow,
    ZombieVehicleZone,
    Zone,
)
from edge.zone_shorthands import ZoneFieldError, expand_zones

__all__ = [
    "CameraConfig",
    "CameraConfigError",
    "ElevatorZone",
    "FacadeCalibration",
    "FacadeColumn",
    "FacadeFloor",
    "FireLaneZone",
    "IllegalParkingZone",
    "LitterZone",
    "MotionConfig",
    "Point",
    "ReconnectConfig",
    "RuleKind",
    "SnapshotConfig",
    "ThrownObjectZone",
    "TimeWindow",
    "TrackerConfig",
    "ZombieVehicleZone",
    "Zone",
    "ZoneFieldError",
    "expand_zones",
    "load_camera_config",
    "parse_camera_config",
    "polygon_problem",
]


class CameraConfigError(ValueError):
    """A camera config file is unreadable or invalid; the message names the file and field."""

    def __init__(self, path: Path | str, field: str, problem: str) -> None:
        self.path = str(path)
        self.field = field
        self.problem = problem
        where = f"{self.path}: {field}" if field else self.path
        super().__init__(f"{where}: {problem}")


class ReconnectConfig(ConfigModel):
    """Backoff between attempts to reopen a live stream."""

    initial_s: Annotated[float, Field(gt=0)] = Field(
        default=0.5, description="Wait before the first reconnect attempt."
    )
    max_s: Annotated[float, Field(gt=0)] = Field(
        default=30.0, description="Longest wait between attempts (the backoff doubles up to it)."
    )
    read_timeout_s: Annotated[float, Field(gt=0)] = Field(
        default=10.0, description="A live stream silent for this long counts as dead."
    )


class MotionConfig(ConfigModel):
    """The cheap motion gate in front of the detector."""

    enabled: bool = Field(default=True, description="Off: run the detector on every frame.")
    width: Annotated[int, Field(ge=32, le=640)] = Field(
        default=160, description="Width of the downscaled grey frame used for differencing."
    )
    threshold: Annotated[int, Field(ge=1, le=255)] = Field(
        default=25, description="Grey-level difference that counts as change."
    )
    min_area: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        default=0.002, description="Smallest changed region (fraction of the frame) that counts."
    )
    alpha: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        default=0.05, description="Learning rate of the running-average background."
    )
    global_change: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        default=0.5,
        description=(
            "If more than this fraction of the frame changes at once it is a lighting change "
            "(lights, clouds, camera IR switch): the background is relearnt, no detector storm."
        ),
    )
    zone_margin: Annotated[float, Field(ge=0.0, le=0.5)] = Field(
        default=0.05, description="Motion this close to a zone (relative units) counts as in it."
    )
    keepalive_s: Annotated[float, Field(gt=0)] = Field(
        default=2.0,
        description="Detector period while tracked objects stand still (confirms dwell timers).",
    )
    idle_keepalive_s: Annotated[float, Field(gt=0)] = Field(
        default=30.0, description="Detector period when nothing is tracked and nothing moves."
    )


class TrackerConfig(ConfigModel):
    """Association of detections into tracks, and when a track counts as stationary."""

    match_iou: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        default=0.25, description="Smallest IoU between a track and a detection to associate them."
    )
    min_hits: Annotated[int, Field(ge=1, le=20)] = Field(
        default=2, description="Detections before a track is confirmed (filters one-off ghosts)."
    )
    max_lost_s: Annotated[float, Field(gt=0)] = Field(
        default=4.0, description="A moving track unseen for this long is dropped."
    )
    max_lost_stationary_s: Annotated[float, Field(gt=0)] = Field(
        default=60.0,
        description=(
            "A stationary track unseen for this long is dropped. Long on purpose: a parked car "
            "missed by the detector or hidden by a passer-by keeps its track and dwell timer."
        ),
    )
    stationary_iou: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        default=0.6,
        description=(
            "IoU with its anchor box above which a box has 'not moved' (detector boxes of a "
            "small parked car jitter by several pixels; 0.6 tolerates that)."
        ),
    )
    stationary_s: Annotated[float, Field(ge=0)] = Field(
        default=2.0, description="Seconds a box must stay put before the track is stationary."
    )
    remember_stationary_s: Annotated[float, Field(gt=0)] = Field(
        default=2 * DAY_S,
        description=(
            "How long a stationary object whose track was lost (night, rain, a restart) is "
            "remembered, so that a track found at its place with its look inherits its "
            "stationary clock (edge.stationary_memory)."
        ),
    )
    moved_confirmations: Annotated[int, Field(ge=1, le=20)] = Field(
        default=3,
        description=(
            "Consecutive moved boxes before a stationary track counts as moving again "
            "(a partly occluded parked car gives odd boxes; they must not reset its dwell)."
        ),
    )


class SnapshotConfig(ConfigModel):
    """The JPEG evidence attached to events."""

    enabled: bool = Field(default=True, description="Attach a JPEG to start and end events.")
    blur_persons: bool = Field(default=False, description="Blur every person box (privacy).")
    draw: bool = Field(default=True, description="Draw the zone and boxes on the snapshot.")
    max_width: Annotated[int, Field(ge=64, le=4096)] = Field(
        default=960, description="Snapshots wider than this are scaled down."
    )
    jpeg_quality: Annotated[int, Field(ge=10, le=100)] = Field(
        default=80, description="JPEG quality (lowered automatically if over the size limit)."
    )


class CameraConfig(ConfigModel):
    """Everything one camera pipeline needs. Load it with `load_camera_config`."""

    camera_id: Segment = Field(
        description="Camera id, unique per edge node; the event's camera_id."
    )
    resolution: (
        tuple[Annotated[int, Field(ge=16, le=16384)], Annotated[int, Field(ge=16, le=16384)]] | None
    ) = Field(
        default=None,
        description=(
            "Stream width and height in pixels; required for zones drawn with polygon_px "
            "(the pipeline warns if the stream's aspect ratio differs)."
        ),
    )
    source: str | int = Field(
        description=(
            "rtsp:// or http(s):// URL, USB index (int or 'usb:N'), video file, or a folder "
            "of images."
        )
    )
    fps: Annotated[float, Field(gt=0, le=60)] = Field(
        default=5.0, description="Frames per second to process; extra frames are dropped."
    )
    timezone: str = Field(
        default="Asia/Shanghai", description="IANA time zone for allowed parking windows."
    )
    detector_threads: Annotated[int, Field(ge=1, le=16)] = Field(
        default=1, description="ONNX Runtime intra-op threads for this camera's detector."
    )
    reconnect: ReconnectConfig = Field(
        default_factory=ReconnectConfig, description="Stream reconnect backoff."
    )
    motion: MotionConfig = Field(default_factory=MotionConfig, description="Motion gate.")
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, description="Tracker.")
    zones: list[Zone] = Field(
        default_factory=list, description="Watched zones, each with its rule."
    )
    snapshot: SnapshotConfig = Field(
        default_factory=SnapshotConfig, description="Snapshot options."
    )

    @field_validator("source")
    @classmethod
    def _usb_index(cls, value: str | int) -> str | int:
        if isinstance(value, str) and value.startswith("usb:") and not value[4:].isdigit():
            raise ValueError(f"{value!r} is not a USB camera: use usb:N (N as in /dev/videoN)")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="before")
    @classmethod
    def _expand(cls, data: object) -> object:
        # parse_camera_config expands first (to name the field); this serves direct callers.
        return expand_zones(data)

    @model_validator(mode="after")
    def _unique_zone_ids(self) -> CameraConfig:
        keys = [(zone.id, zone.rule.value) for zone in self.zones]
        dupes = sorted({z[0] for z in keys if keys.count(z) > 1})
        if dupes:
            raise ValueError(f"zone ids must be unique, repeated: {dupes}")
        kinds = {zone.rule for zone in self.zones}
        if RuleKind.THROWN_OBJECT in kinds and len(kinds) > 1:
            raise ValueError(
                "a thrown_object zone needs a camera of its own (it runs without the object "
                "detector, at a higher frame rate): move the other zones to another camera"
            )
        first: dict[str, Zone] = {}
        for zone in self.zones:
            seen = first.setdefault(zone.id, zone)
            if seen.polygon != zone.polygon or seen.inertia != zone.inertia:
                raise ValueError(
                    f"zones with the same id {zone.id!r} must share polygon and inertia "
                    "(give one zone several `rules` instead)"
                )
        return self


def _dotted(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in {r.value for r in RuleKind}:
            continue  # pydantic adds the union tag to the path; the user never wrote it
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts)


def parse_camera_config(
    data: object, *, origin: Path | str = "<config>", source: str | None = None
) -> CameraConfig:
    """Validate already-parsed YAML/JSON data; errors name `origin` and the field.

    `source`, if given, replaces the config's (which may then be absent): `guanjia edge
    replay` names the clip on its command line.
    """
    if not isinstance(data, dict):
        raise CameraConfigError(origin, "", "expected a mapping at the top level")
    if source is not None:
        data = {**data, "source": source}
    try:
        data = expand_zones(data)
    except ZoneFieldError as exc:
        raise CameraConfigError(origin, exc.field, exc.problem) from exc
    try:
        return CameraConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = _dotted(tuple(first["loc"]))
        problem = first["msg"]
        if first["type"] == "extra_forbidden":
            problem = "unknown key (check the spelling; see docs/edge.md for the fields)"
        more = len(exc.errors()) - 1
        if more:
            problem += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise CameraConfigError(origin, field, problem) from exc


def is_local_path(source: object) -> bool:
    """A camera source that names a file or folder (not a URL, not a USB index)."""
    if not isinstance(source, str) or not source:
        return False
    return "://" not in source and not source.isdigit() and not source.startswith("usb:")


def load_camera_config(path: Path | str, *, source: str | None = None) -> CameraConfig:
    """Read and validate a camera YAML file; `source` replaces (or supplies) its source.

    Raises `CameraConfigError` (a ValueError) naming the file and the dotted field path for a
    missing file, bad YAML, unknown keys, out-of-range values or an invalid polygon.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CameraConfigError(path, "", f"cannot read: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CameraConfigError(path, "", yaml_problem(exc)) from exc
    if source is None and isinstance(data, dict):
        # A file or folder named in the camera YAML is relative to that YAML, whatever the
        # working directory (a `source` given on the command line stays relative to it).
        local = data.get("source")
        if is_local_path(local) and not Path(str(local)).is_absolute():
            data = {**data, "source": str(path.resolve().parent / str(local))}
    return parse_camera_config(data, origin=path, source=source)
