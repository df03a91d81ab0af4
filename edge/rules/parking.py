"""`illegal_parking`: a vehicle stationary in a no-parking zone for >= dwell_s.

Outside the zone's allowed time windows only: inside a window the condition does not hold, so
no event starts and an open one ends (parking became legal).
"""

from __future__ import annotations

from contract import EventCategory, ObjectCategory, Severity
from edge.camera_config import IllegalParkingZone
from edge.rules.base import Condition, RuleContext, stationary_dwell
from edge.tracker import Track


class IllegalParkingRule:
    """Vehicle standing still in a no-parking zone."""

    category = EventCategory.ILLEGAL_PARKING
    severity = Severity.NORMAL

    def __init__(self, zone: IllegalParkingZone) -> None:
        self.zone = zone
        self.zone_id = zone.id

    def evaluate(self, ctx: RuleContext) -> dict[int, Condition]:
        """Stationary vehicles in the zone, ready once they stood dwell_s."""
        if any(window.contains(ctx.local_time) for window in self.zone.allowed_windows):
            return {}
        return stationary_dwell(
            ctx, self.zone_id, self.zone.dwell_s, self.zone.end_after_s, _is_vehicle
        )


def _is_vehicle(track: Track) -> bool:
    return track.category is ObjectCategory.VEHICLE
