"""What every zone rule receives and returns, and the factory from zone config to rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import time as dtime
from typing import Protocol

from contract import EventCategory, Severity
from edge.camera_config import (
    ElevatorZone,
    FireLaneZone,
    IllegalParkingZone,
    LitterZone,
    ZombieVehicleZone,
    Zone,
)
from edge.tracker import Track
from edge.zones import ZoneMemberships


@dataclass(frozen=True)
class Condition:
    """A rule's condition holds for one track: since when, and whether it is ripe for an event.

    A held-but-not-ready condition keeps an open event alive without starting one (e.g. an
    e-bike still in the cabin after one missed detection).
    """

    track_id: int
    since: float
    ready: bool


@dataclass(frozen=True)
class RuleContext:
    """Everything a rule may look at for one frame."""

    now: float
    local_time: dtime
    tracks: list[Track]
    memberships: ZoneMemberships


class ZoneRule(Protocol):
    """One zone's rule."""

    zone_id: str
    category: EventCategory
    severity: Severity

    def evaluate(self, ctx: RuleContext) -> dict[int, Condition]:
        """Conditions that hold now, by track id."""


def make_rule(zone: Zone) -> ZoneRule:
    """The rule object for a zone config."""
    # Imported here: each rule module imports this one for Condition/RuleContext.
    from edge.rules.elevator import EbikeInElevatorRule
    from edge.rules.fire_lane import FireLaneRule
    from edge.rules.litter import LitterRule
    from edge.rules.parking import IllegalParkingRule
    from edge.rules.zombie import ZombieVehicleRule

    if isinstance(zone, IllegalParkingZone):
        return IllegalParkingRule(zone)
    if isinstance(zone, FireLaneZone):
        return FireLaneRule(zone)
    if isinstance(zone, ElevatorZone):
        return EbikeInElevatorRule(zone)
    if isinstance(zone, LitterZone):
        return LitterRule(zone)
    if isinstance(zone, ZombieVehicleZone):
        return ZombieVehicleRule(zone)
    # thrown_object zones are not track rules: `edge.facade_pipeline` runs them.
    raise TypeError(f"no track rule for zone type {type(zone).__name__}")


def is_gone(track: Track, now: float, end_after_s: float) -> bool:
    """True if the detector misses the track and its place has looked empty for end_after_s.

    See `edge.vacancy`: an object hidden by a passer-by is not gone; its place does not look
    like the empty scene.
    """
    return (
        track.vacant_since is not None
        and not track.seen_last_update
        and now - track.vacant_since >= end_after_s
    )


def stationary_in_zone_since(
    track: Track, ctx: RuleContext, zone_id: str, end_after_s: float
) -> float | None:
    """When a confirmed track became both stationary and inside the zone, else None.

    None too once the object is gone (`is_gone` for the zone's end_after_s).
    """
    if is_gone(track, ctx.now, end_after_s):
        return None
    member = ctx.memberships.get(zone_id, track.track_id)
    since = track.stationary_since
    if not track.confirmed or since is None or not member.inside or member.entered_at is None:
        return None
    return max(since, member.entered_at)


def stationary_dwell(
    ctx: RuleContext,
    zone_id: str,
    dwell_s: float,
    end_after_s: float,
    counts: Callable[[Track], bool],
) -> dict[int, Condition]:
    """Conditions of the tracks that `counts` and stand still in the zone: ready after dwell_s.

    The shared core of the parking and fire-lane rules, which differ only in what counts.
    """
    found: dict[int, Condition] = {}
    for track in ctx.tracks:
        if not counts(track):
            continue
        since = stationary_in_zone_since(track, ctx, zone_id, end_after_s)
        if since is not None:
            found[track.track_id] = Condition(track.track_id, since, ctx.now - since >= dwell_s)
    return found
