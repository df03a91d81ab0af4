"""Zone configuration: one model per rule, their polygons, and the zone shorthands.

Zones are polygons in coordinates relative to the frame (0..1), so a config survives a change
of stream resolution. Installers who draw zones on a snapshot may give ``polygon_px`` instead,
with the camera's ``resolution``: it is converted to relative coordinates once, at load. A zone
may name several rules (``rules: {fire_lane_blocked: {...}, illegal_parking: {...}}``): it is
expanded at load into one zone per rule, sharing id, polygon and inertia (`expand_zones`).
`edge.camera_config` holds the camera-level models and re-exports these.
"""

from __future__ import annotations

import itertools
import re
from datetime import time as dtime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contract import ObjectCategory
from contract.messages import Segment
from edge.actions import ActionName

Point = tuple[
    Annotated[float, Field(ge=0.0, le=1.0)],
    Annotated[float, Field(ge=0.0, le=1.0)],
]

_DEFAULT_ELEVATOR_ACTIONS: tuple[ActionName, ...] = ("voice_warning", "door_hold")

DAY_S = 86_400.0

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class ConfigModel(BaseModel):
    """Base of every config model: unknown keys are errors; frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleKind(StrEnum):
    """Which zone rule watches a zone; equals the contract's event category."""

    ILLEGAL_PARKING = "illegal_parking"
    FIRE_LANE_BLOCKED = "fire_lane_blocked"
    EBIKE_IN_ELEVATOR = "ebike_in_elevator"
    LITTER = "litter"
    ZOMBIE_VEHICLE = "zombie_vehicle"
    THROWN_OBJECT = "thrown_object"


class TimeWindow(ConfigModel):
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


class _ZoneBase(ConfigModel):
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
        default=7 * DAY_S,
        description="Seconds a vehicle must stand in the area before an event (default 7 days).",
    )
    update_interval_s: Annotated[float, Field(gt=0)] = Field(
        default=DAY_S, description="Minimum seconds between two `update` publications."
    )


class FacadeFloor(ConfigModel):
    """One floor line drawn on the facade: the floor slab at the bottom of `floor`."""

    floor: Annotated[int, Field(ge=-5, le=300)] = Field(description="Floor number (1 = ground).")
    y: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        description="Height in the image (relative, 0 = top) of that floor's bottom line."
    )


class FacadeColumn(ConfigModel):
    """One column of windows on the facade (e.g. a flat's stack of windows)."""

    name: Segment = Field(description="Column name, e.g. 'A' or '02'.")
    x1: Annotated[float, Field(ge=0.0, le=1.0)] = Field(description="Left edge (relative).")
    x2: Annotated[float, Field(ge=0.0, le=1.0)] = Field(description="Right edge (relative).")


class FacadeCalibration(ConfigModel):
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
