"""Zone geometry and zone membership with inertia (pure; `now` is passed in).

A track is in a zone when the bottom-centre of its box (where it touches the ground) lies in
the zone's polygon. Membership flips only after ``inertia`` consecutive detector observations
agree, so a box jittering on the border does not enter and leave on alternate frames.
Membership is observed only on frames where the detector saw the track: between detector runs
(the motion gate skipped them) and during misses, the last state holds.

The frame's edges belong to the zones drawn to them: boxes are clipped to the frame, so an
object cut off by the bottom edge has its bottom-centre at y = 1.0 exactly, which ray casting
would put outside even a full-frame polygon. Points are moved a hair inside the frame first.

Point-in-polygon is a few lines of ray casting here rather than cv2.pointPolygonTest, so the
rules stay free of OpenCV and testable without images.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.boxes import RelBox, touches
from edge.camera_config import Zone
from edge.tracker import Track

# How far a point on the frame's border is moved inwards (far below a pixel of any stream).
_EDGE = 1e-6


def point_in_polygon(x: float, y: float, polygon: list[tuple[float, float]]) -> bool:
    """Even-odd ray casting; a point on the frame's border counts as just inside the frame.

    Other points on a polygon's boundary may fall either way.
    """
    x = min(max(x, _EDGE), 1.0 - _EDGE)
    y = min(max(y, _EDGE), 1.0 - _EDGE)
    inside = False
    n = len(polygon)
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % n]
        if (y1 > y) != (y2 > y):
            cross_x = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < cross_x:
                inside = not inside
    return inside


def polygon_bounds(polygon: list[tuple[float, float]]) -> RelBox:
    """Axis-aligned bounding box of a polygon."""
    xs = [p[0] for p in polygon]
    ys = [p[1] for p in polygon]
    return (min(xs), min(ys), max(xs), max(ys))


def box_near_zone(box: RelBox, polygon: list[tuple[float, float]], margin: float) -> bool:
    """True if `box` overlaps the zone's bounding box grown by `margin` (cheap gate test)."""
    return touches(box, polygon_bounds(polygon), margin)


@dataclass
class Membership:
    """One track's relation to one zone. Rules read it; `ZoneMemberships` changes it."""

    inside: bool = False
    """The debounced state: flips only after `inertia` observations agree."""
    entered_at: float | None = None
    """When the observations that made it inside began (None while outside)."""
    streak: int = 0
    """Observations in a row that disagree with `inside` (a flip in progress)."""
    streak_started: float = 0.0
    consecutive_inside: int = 0
    """Detector runs in a row that saw the track inside (a miss restarts it)."""
    consecutive_since: float | None = None
    """When the current run of `consecutive_inside` observations began (None: not inside)."""

    def observe(self, here: bool, now: float, inertia: int) -> None:
        """Fold in one sighting at `now`: its bottom-centre is in the polygon or not."""
        if here:
            if self.consecutive_inside == 0:
                self.consecutive_since = now
            self.consecutive_inside += 1
        else:
            self.missed()
        if here == self.inside:
            self.streak = 0
            return
        if self.streak == 0:
            self.streak_started = now
        self.streak += 1
        if self.streak >= inertia:
            self.inside = here
            self.entered_at = self.streak_started if here else None
            self.streak = 0

    def missed(self) -> None:
        """A detector run without a sighting: `inside` holds, the consecutive count restarts."""
        self.consecutive_inside = 0
        self.consecutive_since = None


class ZoneMemberships:
    """Membership of every track in every zone of one camera."""

    def __init__(self, zones: list[Zone]) -> None:
        # Zones sharing an id (one zone, several rules) share polygon and inertia (validated).
        self._zones = {zone.id: zone for zone in zones}
        self._state: dict[tuple[str, int], Membership] = {}

    def get(self, zone_id: str, track_id: int) -> Membership:
        """Current membership (a fresh outside one if never observed)."""
        return self._state.get((zone_id, track_id), Membership())

    def observe(self, tracks: list[Track], now: float) -> None:
        """Fold in the tracks seen by the detector run at `now`."""
        for track in tracks:
            if not track.seen_last_update:
                for zone_id in self._zones:
                    if (member := self._state.get((zone_id, track.track_id))) is not None:
                        member.missed()
                continue
            x, y = track.bottom_centre
            for zone in self._zones.values():
                member = self._state.setdefault((zone.id, track.track_id), Membership())
                member.observe(point_in_polygon(x, y, zone.polygon), now, zone.inertia)

    def inherit(self, track: Track, since: float) -> None:
        """A re-found object (`edge.stationary_memory`) is inside the zones its bottom-centre
        is in since `since`, without waiting for `inertia` observations again."""
        x, y = track.bottom_centre
        for zone in self._zones.values():
            if point_in_polygon(x, y, zone.polygon):
                member = self._state.setdefault((zone.id, track.track_id), Membership())
                member.inside, member.streak = True, 0
                member.entered_at = min(since, member.entered_at or since)

    def forget(self, track_id: int) -> None:
        """Drop the state of a track that the tracker dropped."""
        for zone_id in self._zones:
            self._state.pop((zone_id, track_id), None)
