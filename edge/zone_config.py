"""Zone configuration: one model per rule, and the `Zone` union the camera config holds.

Zones are polygons in coordinates relative to the frame (0..1), so a config survives a change
of stream resolution (checked by `edge.polygons`). The shorthands ``polygon_px`` and ``rules``
are expanded before validation (`edge.zone_shorthands`); the facade camera's floor lines live
in `edge.facade_calibration`. `edge.camera_config` holds the camera-level models and
re-exports these.
"""

from __future__ import annotations

import re
from datetime import time as dtime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from contract import ObjectCategory
from contract.messages import Segment
from edge.actions import ActionName
from edge.config_model import ConfigModel
from edge.facade_calibration import FacadeCalibration
from edge.polygons import polygon_problem

Point = tuple[
    Annotated[float, Field(ge=0.0, le=1.0)],
    Annotated[float, Field(ge=0.0, le=1.0)],
]

_DEFAULT_ELEVATOR_ACTIONS: tuple[ActionName, ...] = ("voice_warning", "door_hold")

DAY_S = 86_400.0

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


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
