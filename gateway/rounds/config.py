"""Rounds configuration: routes of checkpoints with QR tags and checklists, and schedules.

Part of a site file (`gateway.sites`), validated here with pydantic (``extra="forbid"``):

- a **route** is an ordered list of **checkpoints** (a fire extinguisher, a hydrant, a fire
  door, a charging shed, a fire lane); each has a QR tag id, the zone or grid it stands in,
  and a **checklist** of items with their pass criteria, some needing a photo;
- a **schedule** walks one route every `every_min` minutes inside each of its shifts (day,
  night; clock times in the site's time zone, a shift may run past midnight), for one grid
  (whose supervisor answers for missed rounds), optionally by one named person.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,48}$")]
"""A route, checkpoint, item, schedule, place or grid id (48 characters: ticket device ids
are built from them with a short prefix)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CheckpointKind(StrEnum):
    """What stands at a checkpoint (数字消防 equipment and the places checked with it)."""

    FIRE_EXTINGUISHER = "fire_extinguisher"
    HYDRANT = "hydrant"
    FIRE_DOOR = "fire_door"
    CHARGING_SHED = "charging_shed"
    FIRE_LANE = "fire_lane"
    OTHER = "other"


class ChecklistItem(_Strict):
    """One thing to check at a checkpoint."""

    item_id: Id = Field(description="Unique within its checkpoint.")
    text: str = Field(min_length=1, max_length=200, description="What to check (压力表).")
    pass_criteria: str = Field(
        min_length=1, max_length=300, description="When it passes (指针在绿区)."
    )
    photo_required: bool = Field(default=False, description="A photo must come with the tick.")


class Checkpoint(_Strict):
    """A place on a route with a QR tag and a checklist."""

    checkpoint_id: Id
    name: str = Field(min_length=1, max_length=200)
    kind: CheckpointKind
    tag_id: str = Field(
        pattern=r"^[A-Za-z0-9_-]{4,64}$", description="What the QR tag on the equipment holds."
    )
    zone_id: Id | None = Field(default=None, description="Zone it stands in (routes tickets).")
    grid_id: Id | None = Field(default=None, description="Grid, when no zone says it.")
    checklist: list[ChecklistItem] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _unique_items(self) -> Checkpoint:
        _unique([i.item_id for i in self.checklist], "checklist", "item_id")
        return self

    @property
    def photo_required(self) -> bool:
        """Whether a scan of this checkpoint must carry a photo."""
        return any(i.photo_required for i in self.checklist)


class Route(_Strict):
    """An ordered walk of checkpoints."""

    route_id: Id
    name: str = Field(min_length=1, max_length=200)
    checkpoints: list[Checkpoint] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _unique_checkpoints(self) -> Route:
        _unique([c.checkpoint_id for c in self.checkpoints], "checkpoints", "checkpoint_id")
        return self

    def checkpoint(self, checkpoint_id: str) -> Checkpoint | None:
        """The checkpoint of that id on this route."""
        return next((c for c in self.checkpoints if c.checkpoint_id == checkpoint_id), None)


class ShiftWindow(_Strict):
    """A daily window in the site's time zone; `end` at or before `start` runs past midnight."""

    name: str = Field(min_length=1, max_length=50, description="day, night, 白班, 夜班 …")
    start: dt.time
    end: dt.time


class Schedule(_Strict):
    """Walk `route_id` every `every_min` minutes in each shift, from `effective_from` on."""

    schedule_id: Id
    route_id: Id
    grid_id: Id = Field(description="The grid doing it; its supervisor gets missed rounds.")
    assignee: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="A named person instead of the grid's on-duty butler.",
    )
    every_min: int = Field(ge=15, le=1440, description="A round starts this often.")
    on_time_min: int | None = Field(
        default=None,
        ge=1,
        description="A round not finished this long after it starts is late "
        "(default: half of every_min).",
    )
    grace_min: int = Field(
        default=0, ge=0, le=240, description="After the round's window, before it is missed."
    )
    shifts: list[ShiftWindow] = Field(min_length=1, max_length=6)
    effective_from: dt.date = Field(description="No round is planned before this local date.")

    @model_validator(mode="after")
    def _on_time_within(self) -> Schedule:
        if self.on_time_min is not None and self.on_time_min > self.every_min:
            raise ValueError("on_time_min: must not exceed every_min")
        return self

    @property
    def on_time_s(self) -> float:
        """Seconds after a round starts before it is late."""
        return 60.0 * (self.on_time_min if self.on_time_min is not None else self.every_min / 2)


class RoundsConfig(_Strict):
    """A site's routes and schedules."""

    routes: list[Route] = Field(default_factory=list)
    schedules: list[Schedule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> RoundsConfig:
        _unique([r.route_id for r in self.routes], "routes", "route_id")
        _unique([s.schedule_id for s in self.schedules], "schedules", "schedule_id")
        tags: set[str] = set()
        for r, route in enumerate(self.routes):
            for c, checkpoint in enumerate(route.checkpoints):
                if checkpoint.tag_id in tags:
                    raise ValueError(
                        f"routes[{r}].checkpoints[{c}].tag_id: {checkpoint.tag_id!r} "
                        "is another checkpoint's tag"
                    )
                tags.add(checkpoint.tag_id)
        known = {r.route_id for r in self.routes}
        for n, schedule in enumerate(self.schedules):
            if schedule.route_id not in known:
                raise ValueError(
                    f"schedules[{n}].route_id: {schedule.route_id!r} is not a route of this site"
                )
        return self

    def route(self, route_id: str) -> Route | None:
        """The route of that id."""
        return next((r for r in self.routes if r.route_id == route_id), None)

    def by_tag(self, tag_id: str) -> tuple[Route, Checkpoint] | None:
        """The route and checkpoint a scanned QR tag belongs to."""
        for route in self.routes:
            for checkpoint in route.checkpoints:
                if checkpoint.tag_id == tag_id:
                    return route, checkpoint
        return None


def _unique(values: list[str], where: str, field: str) -> None:
    seen: set[str] = set()
    for n, value in enumerate(values):
        if value in seen:
            raise ValueError(f"{where}[{n}].{field}: {value!r} appears twice")
        seen.add(value)
