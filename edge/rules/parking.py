"""`illegal_parking`: a vehicle stationary in a no-parking zone for >= dwell_s.

Outside the zone's allowed time windows only: inside a window the condition does not hold, so
no event starts and an open one ends (parking became legal).
"""

from __future__ import annotations

from contract import EventCategory, ObjectCategory, Severity
from edge.camera_config import IllegalParkingZone
from edge.rules.base import Condition, RuleContext, stationary_in_zone_since


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
        found: dict[int, Condition] = {}
        for track in ctx.tracks:
            if track.category is not ObjectCategory.VEHICLE:
                continue
            since = stationary_in_zone_since(track, ctx, self.zone_id)
            if since is not None:
                found[track.track_id] = Condition(
                    track.track_id, since, ctx.now - since >= self.zone.dwell_s
                )
        return found
