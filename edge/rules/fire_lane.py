"""`fire_lane_blocked`: a vehicle, or another large static object, in a fire lane >= dwell_s.

Vehicles always count. Two-wheelers and litter candidates count when their box covers at
least ``min_obstacle_area`` of the frame (a dumped sofa or a parked tricycle blocks a lane; a
bottle does not). Persons never count. Urgent.
"""

from __future__ import annotations

from contract import EventCategory, ObjectCategory, Severity
from edge.boxes import area
from edge.camera_config import FireLaneZone
from edge.rules.base import Condition, RuleContext, stationary_dwell
from edge.tracker import Track


class FireLaneRule:
    """Static obstacle in a fire lane."""

    category = EventCategory.FIRE_LANE_BLOCKED
    severity = Severity.URGENT

    def __init__(self, zone: FireLaneZone) -> None:
        self.zone = zone
        self.zone_id = zone.id

    def _is_obstacle(self, track: Track) -> bool:
        if track.category is ObjectCategory.VEHICLE:
            return True
        if track.category is ObjectCategory.PERSON:
            return False
        return area(track.box) >= self.zone.min_obstacle_area

    def evaluate(self, ctx: RuleContext) -> dict[int, Condition]:
        """Static obstacles in the lane, ready once they stood dwell_s."""
        return stationary_dwell(
            ctx, self.zone_id, self.zone.dwell_s, self.zone.end_after_s, self._is_obstacle
        )
