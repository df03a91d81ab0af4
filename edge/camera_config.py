"""Camera configuration: source, frame rate, motion gate, tracker, zones and snapshot options.

One YAML file per camera (examples in ``firmware_configs/cameras/``). Every model forbids
unknown keys, so a typo fails loudly instead of silently running with a default. Zones are
polygons in coordinates relative to the frame (0..1), so a config survives a change of stream
resolution. Installers who draw zones on a snapshot may give ``polygon_px`` instead, with the
camera's ``resolution``: it is converted to relative coordinates once, at load. A zone may name
several rules (``rules: {fire_lane_blocked: {...}, illegal_parking: {...}}``): it is expanded at
load into one zone per rule, sharing id, polygon and inertia. `load_camera_config` turns every
problem into a `CameraConfigError` that names the file and the dotted field path.
"""

from __future__ import annotations

import itertools
import re
import zoneinfo
from datetime import time as dtime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from contract import ObjectCategory
from contract.messages import Segment
from edge.actions import ActionName

Point = tuple[
    Annotated[float, Field(ge=0.0, le=1.0)],
    Annotated[float, Field(ge=0.0, le=1.0)],
]

_DEFAULT_ELEVATOR_ACTIONS: tuple[ActionName, ...] = ("voice_warning", "door_hold")

_DAY_S = 86_400.0

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class CameraConfigError(ValueError):
    """A camera config file is unreadable or invalid; the message names the file and field."""

    def __init__(self, path: Path | str, field: str, problem: str) -> None:
        self.path = str(path)
        self.field = field
        self.problem = problem
        where = f"{self.path}: {field}" if field else self.path
        super().__init__(f"{where}: {problem}")


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleKind(StrEnum):
    """Which zone rule watches a zone; equals the contract's event category."""

    ILLEGAL_PARKING = "illegal_parking"
    FIRE_LANE_BLOCKED = "fire_lane_blocked"
    EBIKE_IN_ELEVATOR = "ebike_in_elevator"
    LITTER = "litter"
    ZOMBIE_VEHICLE = "zombie_vehicle"
    THROWN_OBJECT = "thrown_object"


class TimeWindow(_Config):
    """A daily window of local time, ``start`` inclusive, ``end`` exclusive; may wrap midnight."""

    start: str = Field(description="Local time HH:MM at which the window opens.")
    end: str = Field(description="Local time HH:MM at which the window closes (may be < start).")

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"{value!r} is not a time HH:MM (00:00..23:59)")
        return value

    def _minutes(self, text: str) -> int:
        hours, minutes = text.split(":")
        return int(hours) * 60 + int(minutes)

    def contains(self, local: dtime) -> bool:
        """True if the local wall-clock time lies in the window."""
        now = local.hour * 60 + local.minute
        start, end = self._minutes(self.start), self._minutes(self.end)
        if start == end:
            return True  # a 24 h window
        if start < end:
            return start <= now < end
        return now >= start or now < end


def _segments_cross(
    a: tuple[float, float], b: tuple[float, float], c: tuple[float, float], d: tuple[float, float]
) -> bool:
    def orient(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float]) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    d1, d2 = orient(c, d, a), orient(c, d, b)
    d3, d4 = orient(a, b, c), orient(a, b, d)
    return ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and 0 not in (d1, d2, d3, d4)


def polygon_problem(points: list[tuple[float, float]]) -> str | None:
    """Why a polygon cannot be a zone (too few points, no area, self-crossing); None if fine."""
    if len(points) < 3:
        return f"a polygon needs at least 3 points, got {len(points)}"
    n = len(points)
    for i in range(n):
        for j in range(i + 1, n):
            if j in (i, (i + 1) % n, (i - 1) % n) or i == (j + 1) % n:
                continue  # neighbouring edges share a vertex
            if _segments_cross(points[i], points[(i + 1) % n], points[j], points[(j + 1) % n]):
                return f"polygon edges {i} and {j} cross each other"
    area2 = 0.0
    for i, (x1, y1) in enumerate(points):
        x2, y2 = points[(i + 1) % len(points)]
        area2 += x1 * y2 - x2 * y1
    if abs(area2) / 2 < 1e-4:
        return "polygon has (almost) no area: its points are collinear or repeated"
    return None


class _ZoneBase(_Config):
    id: Segment = Field(description="Zone id, unique per camera; becomes the event's zone_id.")
    polygon: list[Point] = Field(
        description="Zone outline as [x, y] points relative to the frame (0..1), at least 3."
    )
    inertia: Annotated[int, Field(ge=1, le=30)] = Field(
        default=3,
        description=(
            "Consecutive detections that must agree before a track counts as entering or "
            "leaving the zone (filters box jitter at the border)."
        ),
    )
    update_interval_s: Annotated[float, Field(gt=0)] = Field(
        default=60.0, description="Minimum seconds between two `update` publications of an event."
    )
    end_after_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=3.0,
        description=(
            "Seconds the place of a stationary object must look like the background it covered "
            "before it arrived (nothing detected there, nothing standing in front) before the "
            "object counts as gone and its event ends."
        ),
    )

    @field_validator("polygon")
    @classmethod
    def _valid_polygon(cls, value: list[tuple[float, float]]) -> list[tuple[float, float]]:
        problem = polygon_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class IllegalParkingZone(_ZoneBase):
    """No-parking zone: a stationary vehicle for >= dwell_s outside the allowed windows."""

    rule: Literal[RuleKind.ILLEGAL_PARKING] = Field(description="Rule kind of this zone.")
    dwell_s: Annotated[float, Field(gt=0)] = Field(
        default=300.0, description="Seconds a vehicle must stand still in the zone before an event."
    )
    allowed_windows: list[TimeWindow] = Field(
        default_factory=list,
        description="Local time windows in which parking is allowed (e.g. 22:00-07:00 overnight).",
    )


class FireLaneZone(_ZoneBase):
    """Fire lane: a vehicle or other large static object for >= dwell_s; urgent."""

    rule: Literal[RuleKind.FIRE_LANE_BLOCKED] = Field(description="Rule kind of this zone.")
    dwell_s: Annotated[float, Field(gt=0)] = Field(
        default=60.0,
        description="Seconds an obstacle must stand still in the lane before an event.",
    )
    min_obstacle_area: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        default=0.01,
        description=(
            "Smallest box area (fraction of the frame) for a non-vehicle object (two-wheeler, "
            "litter candidate) to count as an obstacle. Vehicles always count."
        ),
    )


class ElevatorZone(_ZoneBase):
    """Elevator cabin: a two-wheeler seen in the cabin for dwell_s; fires local actions."""

    rule: Literal[RuleKind.EBIKE_IN_ELEVATOR] = Field(description="Rule kind of this zone.")
    dwell_s: Annotated[float, Field(ge=0, le=60)] = Field(
        default=2.0,
        description=(
            "Seconds a two-wheeler must be seen in the cabin, in detector runs without a miss, "
            "from the first sighting to the one that confirms it (at any frame rate)."
        ),
    )
    min_sightings: Annotated[int, Field(ge=1, le=300)] = Field(
        default=3,
        description=(
            "Fewest sightings in a row that can confirm a bike, however long they span: at a "
            "low frame rate two chance detections 2 s apart must not fire the door hold."
        ),
    )
    clear_misses: Annotated[int, Field(ge=1, le=300)] = Field(
        default=5,
        description=(
            "Consecutive detector runs without any two-wheeler in the cabin that end the event "
            "(the detector runs on every frame while it checks: 5 = 1 s at 5 fps)."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _count_of_runs(cls, data: object) -> object:
        # Deprecated: `min_consecutive` counted detector runs, so its meaning changed with the
        # frame rate. Older configs keep their exact behaviour (that count, no time span) until
        # they are rewritten with dwell_s.
        if isinstance(data, dict) and "min_consecutive" in data:
            data = dict(data)
            count = data.pop("min_consecutive")
            data.setdefault("min_sightings", count)
            data.setdefault("dwell_s", 0.0)
        return data

    actions: list[ActionName] = Field(
        default_factory=lambda: list(_DEFAULT_ELEVATOR_ACTIONS),
        description="Local actions fired on the edge in the frame that confirms the bike.",
    )
    voice_text: str = Field(
        default="电动车禁止进入电梯，请推出电梯",
        max_length=200,
        description="Text of the voice warning.",
    )
    inertia: Annotated[int, Field(ge=1, le=30)] = Field(
        default=1,
        description="Consecutive detections before entering/leaving counts (1: react at once).",
    )


class LitterZone(_ZoneBase):
    """Litter watch: a new unattended static object that stays >= dwell_s."""

    rule: Literal[RuleKind.LITTER] = Field(description="Rule kind of this zone.")
    dwell_s: Annotated[float, Field(gt=0)] = Field(
        default=60.0, description="Seconds a new object must lie unattended before an event."
    )
    reference_s: Annotated[float, Field(ge=0)] = Field(
        default=10.0,
        description=(
            "Seconds after start-up during which objects already lying in the zone are learnt as "
            "the reference background and never reported."
        ),
    )
    categories: list[ObjectCategory] = Field(
        default_factory=lambda: [ObjectCategory.LITTER_CANDIDATE],
        description="Object categories that count as litter (persons and vehicles never do).",
    )

    @field_validator("categories")
    @classmethod
    def _no_people_or_cars(cls, value: list[ObjectCategory]) -> list[ObjectCategory]:
        bad = {ObjectCategory.PERSON, ObjectCategory.VEHICLE} & set(value)
        if bad:
            raise ValueError(f"persons and vehicles never count as litter: {sorted(bad)}")
        return value


class ZombieVehicleZone(_ZoneBase):
    """Watched parking area: a vehicle stationary there for days (僵尸车); low urgency.

    The stationary clock survives nights, rain, lost tracks and restarts of the node: see
    `edge.stationary_memory`.
    """

    rule: Literal[RuleKind.ZOMBIE_VEHICLE] = Field(description="Rule kind of this zone.")
    dwell_s: Annotated[float, Field(ge=60)] = Field(
        default=7 * _DAY_S,
        description="Seconds a vehicle must stand in the area before an event (default 7 days).",
    )
    update_interval_s: Annotated[float, Field(gt=0)] = Field(
        default=_DAY_S, description="Minimum seconds between two `update` publications."
    )


class FacadeFloor(_Config):
    """One floor line drawn on the facade: the floor slab at the bottom of `floor`."""

    floor: Annotated[int, Field(ge=-5, le=300)] = Field(description="Floor number (1 = ground).")
    y: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        description="Height in the image (relative, 0 = top) of that floor's bottom line."
    )


class FacadeColumn(_Config):
    """One column of windows on the facade (e.g. a flat's stack of windows)."""

    name: Segment = Field(description="Column name, e.g. 'A' or '02'.")
    x1: Annotated[float, Field(ge=0.0, le=1.0)] = Field(description="Left edge (relative).")
    x2: Annotated[float, Field(ge=0.0, le=1.0)] = Field(description="Right edge (relative).")


class FacadeCalibration(_Config):
    """Floor lines and window columns drawn on the facade camera's picture.

    Gives pixels per metre at each height (perspective: upper floors look shorter when the
    camera looks up) and maps a point of the facade to its floor and column.
    """

    floors: list[FacadeFloor] = Field(
        min_length=1,
        description="Bottom line of each watched floor, lowest floor first (y decreasing).",
    )
    roof_y: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        description="Top line of the highest floor listed (relative y)."
    )
    floor_height_m: Annotated[float, Field(gt=1.5, le=10.0)] = Field(
        default=3.0, description="Storey height in metres (sets the scale for gravity)."
    )
    columns: list[FacadeColumn] = Field(
        default_factory=list, description="Window columns, left to right (may be empty)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> FacadeCalibration:
        numbers = [f.floor for f in self.floors]
        if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
            raise ValueError("floors must be consecutive, lowest first")
        ys = [f.y for f in self.floors] + [self.roof_y]
        if any(b >= a for a, b in itertools.pairwise(ys)):
            raise ValueError("floor lines must rise in the picture (y decreasing) up to roof_y")
        for col in self.columns:
            if col.x2 <= col.x1:
                raise ValueError(f"column {col.name}: x2 must be right of x1")
        return self

    def lines(self) -> list[tuple[float, float]]:
        """(y, height above the lowest floor line in metres) of every line, bottom first."""
        ys = [f.y for f in self.floors] + [self.roof_y]
        return [(y, i * self.floor_height_m) for i, y in enumerate(ys)]

    def floor_at(self, y: float) -> int:
        """The floor whose band holds image height `y` (clamped to the floors listed)."""
        for f, top in zip(self.floors, [*(f.y for f in self.floors[1:]), self.roof_y], strict=True):
            if y > top:
                return f.floor
        return self.floors[-1].floor

    def column_at(self, x: float) -> str | None:
        """The column that holds `x`, or None."""
        for col in self.columns:
            if col.x1 <= x <= col.x2:
                return col.name
        return None


class ThrownObjectZone(_ZoneBase):
    """Facade camera: an object falling from the building (高空抛物); urgent.

    The camera runs without the object detector, at a higher frame rate (15-25 fps): see
    `edge.falls` and `edge.facade_pipeline`. The polygon is where falls are watched (the facade
    and the ground in front of it).
    """

    rule: Literal[RuleKind.THROWN_OBJECT] = Field(description="Rule kind of this zone.")
    facade: FacadeCalibration = Field(description="Floor lines and window columns.")
    min_blob_area: Annotated[float, Field(ge=0.0, le=0.1)] = Field(
        default=0.00002, description="Smallest moving blob (fraction of the frame) followed."
    )
    max_blob_area: Annotated[float, Field(gt=0.0, le=0.1)] = Field(
        default=0.004,
        description="Largest blob a thrown object makes; larger ones (people, a lift) never count.",
    )
    min_points: Annotated[int, Field(ge=4, le=200)] = Field(
        default=6, description="Fewest sightings of a track before its fall is judged."
    )
    min_drop: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        default=0.08, description="Smallest drop (fraction of the frame height) of a fall."
    )
    max_rms: Annotated[float, Field(gt=0.0, le=0.2)] = Field(
        default=0.012,
        description="Largest RMS residual of the parabola (and of the straight x(t)), relative.",
    )
    g_tolerance: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        default=0.45,
        description=(
            "Fitted acceleration may differ from gravity at the facade's scale by this fraction "
            "(drag, perspective, an imprecise calibration)."
        ),
    )


Zone = Annotated[
    IllegalParkingZone
    | FireLaneZone
    | ElevatorZone
    | LitterZone
    | ZombieVehicleZone
    | ThrownObjectZone,
    Field(discriminator="rule"),
]


class ReconnectConfig(_Config):
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


class MotionConfig(_Config):
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


class TrackerConfig(_Config):
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
        default=2 * _DAY_S,
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


class SnapshotConfig(_Config):
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


class CameraConfig(_Config):
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
        first: dict[str, _ZoneBase] = {}
        for zone in self.zones:
            seen = first.setdefault(zone.id, zone)
            if seen.polygon != zone.polygon or seen.inertia != zone.inertia:
                raise ValueError(
                    f"zones with the same id {zone.id!r} must share polygon and inertia "
                    "(give one zone several `rules` instead)"
                )
        return self


class ZoneFieldError(ValueError):
    """A zone's shorthand (polygon_px, rules) cannot be expanded; names the field."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


# Keys a zone's entries under `rules` cannot set: every rule of a zone shares them.
_SHARED_ZONE_KEYS = ("id", "polygon", "polygon_px", "inertia", "rule", "rules")


def expand_zones(data: object) -> object:
    """Zones with ``polygon_px`` converted to relative ``polygon``; ``rules`` expanded.

    Raises `ZoneFieldError` naming the field (``zones[2].polygon_px``). Data that is not a
    mapping with a list of zones is returned unchanged for the validation to reject.
    """
    if not isinstance(data, dict) or not isinstance(data.get("zones"), list):
        return data
    zones: list[object] = []
    for i, entry in enumerate(data["zones"]):
        if not isinstance(entry, dict):
            zones.append(entry)
            continue
        zone = _pixels_to_relative(dict(entry), data.get("resolution"), f"zones[{i}]")
        zones.extend(_one_per_rule(zone, f"zones[{i}]"))
    return {**data, "zones": zones}


def _pixels_to_relative(
    zone: dict[str, object], resolution: object, where: str
) -> dict[str, object]:
    if "polygon_px" not in zone:
        return zone
    if "polygon" in zone:
        raise ZoneFieldError(where, "give either polygon or polygon_px, not both")
    points = zone.pop("polygon_px")
    field = f"{where}.polygon_px"
    if (
        not isinstance(resolution, list | tuple)
        or len(resolution) != 2
        or not all(isinstance(v, int) and v > 0 for v in resolution)
    ):
        raise ZoneFieldError(
            field, "needs the camera's resolution: [width, height] in pixels at the top level"
        )
    w, h = resolution
    if not isinstance(points, list) or not all(
        isinstance(p, list | tuple) and len(p) == 2 and all(isinstance(v, int | float) for v in p)
        for p in points
    ):
        raise ZoneFieldError(field, "expected a list of [x, y] pixel points")
    for x, y in points:
        if not (0 <= x <= w and 0 <= y <= h):
            raise ZoneFieldError(field, f"point [{x}, {y}] is outside the {w}x{h} frame")
    zone["polygon"] = [[x / w, y / h] for x, y in points]
    return zone


def _one_per_rule(zone: dict[str, object], where: str) -> list[dict[str, object]]:
    if "rules" not in zone:
        return [zone]
    if "rule" in zone:
        raise ZoneFieldError(where, "give either rule or rules, not both")
    rules = zone.pop("rules")
    if not isinstance(rules, dict) or not rules:
        raise ZoneFieldError(
            f"{where}.rules", "expected a mapping of rule name to its settings, at least one"
        )
    out: list[dict[str, object]] = []
    for name, given in rules.items():
        field = f"{where}.rules.{name}"
        if name not in {r.value for r in RuleKind}:
            allowed = ", ".join(r.value for r in RuleKind)
            raise ZoneFieldError(field, f"unknown rule (allowed: {allowed})")
        settings = given or {}
        if not isinstance(settings, dict):
            raise ZoneFieldError(field, "expected a mapping of the rule's settings")
        for key in _SHARED_ZONE_KEYS:
            if key in settings:
                raise ZoneFieldError(
                    f"{field}.{key}", "set it on the zone: all rules of a zone share it"
                )
        out.append({**zone, **settings, "rule": name})
    return out


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
        raise CameraConfigError(path, "", f"not valid YAML: {exc}") from exc
    return parse_camera_config(data, origin=path, source=source)
