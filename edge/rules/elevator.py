"""`ebike_in_elevator`: a two-wheeler in the cabin for >= min_consecutive detections.

Consecutive means detector runs in a row in which the tracked two-wheeler was seen inside the
cabin zone; one miss restarts the count (before the event starts). Once started, the event
holds while the track is inside (membership with inertia), so a missed frame does not end it.
Persons alone never trigger: only the two_wheeler category is looked at. The pipeline fires
the zone's local actions in the frame that starts the event.
"""

from __future__ import annotations

from contract import EventCategory, ObjectCategory, Severity
from edge.camera_config import ElevatorZone
from edge.rules.base import Condition, RuleContext


class EbikeInElevatorRule:
    """Two-wheeler inside the elevator cabin."""

    category = EventCategory.EBIKE_IN_ELEVATOR
    severity = Severity.URGENT

    def __init__(self, zone: ElevatorZone) -> None:
        self.zone = zone
        self.zone_id = zone.id

    def evaluate(self, ctx: RuleContext) -> dict[int, Condition]:
        """Two-wheelers in the cabin; ready after min_consecutive detections inside."""
        found: dict[int, Condition] = {}
        for track in ctx.tracks:
            if track.category is not ObjectCategory.TWO_WHEELER:
                continue
            member = ctx.memberships.get(self.zone_id, track.track_id)
            if not member.inside or member.entered_at is None:
                continue
            ready = member.consecutive_inside >= self.zone.min_consecutive
            found[track.track_id] = Condition(track.track_id, member.entered_at, ready)
        return found
