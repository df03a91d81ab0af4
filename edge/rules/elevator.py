"""`ebike_in_elevator`: a two-wheeler seen in the cabin for >= dwell_s seconds.

Start: a tracked two-wheeler was seen inside the cabin zone in every detector run for
``dwell_s`` seconds (from the first sighting of the run to the current one; one miss restarts
it), and in at least ``min_sightings`` runs. Seconds, not a count of runs, so that "2 s" means
2 s at 5, 10 or 25 fps; the minimum count keeps two chance detections at a low rate from
firing the door hold. The pipeline fires the zone's local actions in the
frame that starts the event. Persons alone never trigger: only two-wheelers are looked at.

End: the *cabin* has had no two-wheeler for ``clear_misses`` detector runs in a row. This is
decided per zone, not per track, because a bike that leaves usually leaves its track behind:
it rides out in a second, faster than the tracker can follow, and a lost stationary track is
otherwise kept for ``tracker.max_lost_stationary_s`` (60 s) so that parked cars survive
occlusion. Counting the cabin's empty detector runs (the pipeline runs the detector on every
frame while it checks) ends the event about ``clear_misses`` frames after the bike is gone.

One event per cabin occupancy: while an event is open, another two-wheeler track in the cabin
(a second bike, or the same bike re-found under a new track id) keeps the cabin occupied but
does not start an event of its own.
"""

from __future__ import annotations

from dataclasses import replace

from contract import EventCategory, ObjectCategory, Severity
from edge.camera_config import ElevatorZone
from edge.rules.base import Condition, RuleContext
from edge.tracker import Track
from edge.zones import Membership, ZoneMemberships


def cabin_two_wheelers(
    zone_id: str, tracks: list[Track], memberships: ZoneMemberships
) -> list[Track]:
    """Two-wheeler tracks whose membership says they are inside the cabin zone."""
    return [
        t
        for t in tracks
        if t.category is ObjectCategory.TWO_WHEELER and memberships.get(zone_id, t.track_id).inside
    ]


def cabin_empty_runs(zone_id: str, tracks: list[Track], memberships: ZoneMemberships) -> int | None:
    """Detector runs in a row without any two-wheeler seen in the cabin; None if none is there.

    Every track's `missed_runs` counts the runs since it was last seen, so the smallest over the
    cabin's two-wheelers is the number of runs since the cabin last held one.
    """
    inside = cabin_two_wheelers(zone_id, tracks, memberships)
    return min(t.missed_runs for t in inside) if inside else None


# Frame times are sums of floats: 2.0 s of runs at 5 fps may come out as 1.9999999.
_CLOCK_SLACK = 1e-6


def elevator_ready(zone: ElevatorZone, member: Membership, now: float) -> bool:
    """True once the current run of sightings inside spans dwell_s and min_sightings."""
    since = member.consecutive_since
    return (
        since is not None
        and member.consecutive_inside >= zone.min_sightings
        and now - since >= zone.dwell_s - _CLOCK_SLACK
    )


class EbikeInElevatorRule:
    """Two-wheeler inside the elevator cabin."""

    category = EventCategory.EBIKE_IN_ELEVATOR
    severity = Severity.URGENT

    def __init__(self, zone: ElevatorZone) -> None:
        self.zone = zone
        self.zone_id = zone.id
        self._active: int | None = None

    def evaluate(self, ctx: RuleContext) -> dict[int, Condition]:
        """Two-wheelers in an occupied cabin; ready after dwell_s of sightings inside."""
        empty = cabin_empty_runs(self.zone_id, ctx.tracks, ctx.memberships)
        if empty is None or empty >= self.zone.clear_misses:
            self._active = None
            return {}
        found: dict[int, Condition] = {}
        for track in cabin_two_wheelers(self.zone_id, ctx.tracks, ctx.memberships):
            member = ctx.memberships.get(self.zone_id, track.track_id)
            # The current run of sightings, not the first entry: a lost track re-found by a
            # new bike must not reuse the old start time (it names the event id).
            since = member.consecutive_since or member.entered_at
            if since is None:
                continue
            ready = elevator_ready(self.zone, member, ctx.now)
            found[track.track_id] = Condition(track.track_id, since, ready)
        if self._active not in found:
            ready_ids = sorted(tid for tid, c in found.items() if c.ready)
            self._active = ready_ids[0] if ready_ids else None
        if self._active is not None:
            found = {
                tid: c if tid == self._active else replace(c, ready=False)
                for tid, c in found.items()
            }
        return found
