"""`litter`: a new, unattended static object in a litter-watch zone for >= dwell_s.

- *New*: objects seen in the zone during the first ``reference_s`` seconds are the zone's
  reference background (the bins, a bench, a resident's parked trolley) and never count, even
  if their track is lost and found again at the same place (matched by IoU with the reference).
- *Static*: the track is stationary (see `edge.tracker`).
- *Unattended*: no person's box touches the object's box; the dwell clock starts at the last
  detector sighting of a person touching it, so a resident putting down a bag for a chat is
  not litter. (The last sighting, not the first frame without one: the clock must not depend
  on how often the motion gate lets the detector run.)
- Only the zone's ``categories`` count (default: litter candidates); persons and vehicles never.
"""

from __future__ import annotations

from contract import EventCategory, ObjectCategory, Severity
from edge.boxes import RelBox, containment, iou
from edge.camera_config import LitterZone
from edge.rules.base import Condition, RuleContext, stationary_in_zone_since

# A box overlapping a reference object this much is that object found again under a new track.
_REFERENCE_IOU = 0.5
# A person's box covering this much of an object touches it: the object is attended.
_ATTENDED_OVERLAP = 0.05
# A person seen this recently still attends: a lost person track lingers for seconds
# (`tracker.max_lost_s`), and its stale box must not keep a bag attended that long.
_PERSON_RECENT_S = 2.0


class LitterRule:
    """New static object left behind in a watched zone."""

    category = EventCategory.LITTER
    severity = Severity.LOW

    def __init__(self, zone: LitterZone) -> None:
        self.zone = zone
        self.zone_id = zone.id
        self._started: float | None = None
        self._reference_tracks: set[int] = set()
        self._reference_boxes: list[RelBox] = []
        self._attended_at: dict[int, float] = {}

    def _in_zone(self, track_id: int, ctx: RuleContext) -> bool:
        return ctx.memberships.get(self.zone_id, track_id).inside

    def evaluate(self, ctx: RuleContext) -> dict[int, Condition]:
        """New static unattended objects, ready once they lay dwell_s."""
        if self._started is None:
            self._started = ctx.now
        learning = ctx.now - self._started < self.zone.reference_s
        cats = set(self.zone.categories)
        persons = [
            t
            for t in ctx.tracks
            if t.category is ObjectCategory.PERSON and ctx.now - t.last_seen <= _PERSON_RECENT_S
        ]
        found: dict[int, Condition] = {}
        live: set[int] = set()
        for track in ctx.tracks:
            if track.category not in cats:
                continue
            live.add(track.track_id)
            if learning:
                if self._in_zone(track.track_id, ctx):
                    self._reference_tracks.add(track.track_id)
                    self._reference_boxes.append(track.box)
                continue
            if track.track_id in self._reference_tracks or any(
                iou(track.box, ref) >= _REFERENCE_IOU for ref in self._reference_boxes
            ):
                continue
            touching = [p for p in persons if containment(track.box, p.box) > _ATTENDED_OVERLAP]
            if touching:
                last = max(p.last_seen for p in touching)
                self._attended_at[track.track_id] = max(
                    last, self._attended_at.get(track.track_id, last)
                )
            since = stationary_in_zone_since(track, ctx, self.zone_id, self.zone.end_after_s)
            if since is None or touching:
                continue
            start = max(since, self._attended_at.get(track.track_id, since))
            found[track.track_id] = Condition(
                track.track_id, start, ctx.now - start >= self.zone.dwell_s
            )
        for gone in set(self._attended_at) - live:
            del self._attended_at[gone]
        return found
