"""`zombie_vehicle`: a vehicle stationary in a watched area for days (僵尸车); low urgency.

The condition is the parking rule's (confirmed, stationary, bottom-centre in the zone) with a
dwell of days. What makes it work over days is upstream: the stationary clock of a vehicle is
remembered per camera (`edge.stationary_memory`), so a track lost at night or across a
restart of the node and found again at the same place with the same look inherits it. The
event ends when the vehicle drives off or its place looks empty (`edge.vacancy`).
"""

from __future__ import annotations

from contract import EventCategory, ObjectCategory, Severity
from edge.camera_config import ZombieVehicleZone
from edge.rules.base import Condition, RuleContext, stationary_dwell
from edge.tracker import Track


class ZombieVehicleRule:
    """Vehicle standing in the area for days."""

    category = EventCategory.ZOMBIE_VEHICLE
    severity = Severity.LOW

    def __init__(self, zone: ZombieVehicleZone) -> None:
        self.zone = zone
        self.zone_id = zone.id

    def evaluate(self, ctx: RuleContext) -> dict[int, Condition]:
        """Stationary vehicles in the area, ready once they stood dwell_s."""
        return stationary_dwell(
            ctx, self.zone_id, self.zone.dwell_s, self.zone.end_after_s, _is_vehicle
        )


def _is_vehicle(track: Track) -> bool:
    return track.category is ObjectCategory.VEHICLE
