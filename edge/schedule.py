"""When the detector must run on a frame: the policy behind the motion gate (pure).

The detector runs only when it can change a decision: motion in or near a zone or on a
tracked object, tracks still moving or unconfirmed, a stationary object whose place looks empty
(is it gone?), a two-wheeler in an elevator cabin (its rule needs sightings without a miss for
dwell_s, and consecutive empty runs to end the event), a slow keepalive while stationary
objects are being timed, and a slower idle keepalive otherwise.
With the gate disabled it runs on every frame. `DetectorSchedule.reason` says which case
applied, for tuning (docs/edge.md lists them in order).
"""

from __future__ import annotations

from edge.boxes import RelBox, containment, touches
from edge.camera_config import CameraConfig, ElevatorZone
from edge.motion import Motion
from edge.rules.elevator import cabin_two_wheelers, elevator_ready
from edge.tracker import Track
from edge.zones import ZoneMemberships, box_near_zone

# Shortest time between two detector runs that check an object whose place looks empty.
_VACATED_RECHECK_S = 0.5
# A still object's ghost lies in its anchor box grown by this fraction of its size...
_GHOST_MARGIN = 0.1
# ...almost entirely: motion that spills out (the car pulls away) still counts.
_GHOST_INSIDE = 0.95


class DetectorSchedule:
    """Decides per frame whether the detector must run (pure: `now` and state passed in)."""

    def __init__(self, config: CameraConfig) -> None:
        self._motion = config.motion
        self._zones = config.zones
        self._elevator_zones = [z for z in config.zones if isinstance(z, ElevatorZone)]
        self._stationary_s = config.tracker.stationary_s
        self.last_run: float | None = None
        self.reason: str | None = None
        """Why the detector ran on the last frame (None: it did not); for tuning and tests."""

    def should_run(
        self, motion: Motion, tracks: list[Track], memberships: ZoneMemberships, now: float
    ) -> bool:
        """True if running the detector on this frame can change a decision."""
        self.reason = self._reason(motion, tracks, memberships, now)
        return self.reason is not None

    def _reason(  # noqa: PLR0911 - one early return per reason reads best
        self, motion: Motion, tracks: list[Track], memberships: ZoneMemberships, now: float
    ) -> str | None:
        cfg = self._motion
        if not cfg.enabled:
            return "gate off"
        if self.last_run is None or motion.first_frame:
            return "first frame"
        since = now - self.last_run
        if any(self._relevant(region, tracks) for region in motion.regions):
            return "motion"
        for track in tracks:
            reason = self._track_reason(track, now, since)
            if reason is not None:
                return reason
        for zone in self._elevator_zones:
            inside = cabin_two_wheelers(zone.id, tracks, memberships)
            if any(
                t.seen_last_update
                and not elevator_ready(zone, memberships.get(zone.id, t.track_id), now)
                for t in inside
            ):
                return "elevator count"  # the elevator rule needs every run until it is sure
            if inside and 0 < min(t.missed_runs for t in inside) < zone.clear_misses:
                return "elevator clear"  # ...and consecutive empty runs to end the event
        if tracks and since >= cfg.keepalive_s:
            return "keepalive"
        return "idle keepalive" if since >= cfg.idle_keepalive_s else None

    def _track_reason(self, track: Track, now: float, since: float) -> str | None:
        if not track.confirmed:
            # A second sighting confirms it or lets it die.
            return "new track" if track.seen_last_update else None
        if track.stationary:
            # Its place looks empty but the last run saw it: ask the detector (not every frame:
            # a car the colour of the road looks "empty" and is seen again each time).
            vacated = track.vacant_since is not None and track.seen_last_update
            return "vacated" if vacated and since >= _VACATED_RECHECK_S else None
        if not track.still:
            # Follow moving objects frame by frame; a lost one comes back via motion.
            return "moving track" if track.seen_last_update else None
        if track.seen_last_update and now - track.anchor_since >= self._stationary_s:
            # A stopped object needs no frame-by-frame watching (if it moves off, the motion
            # gate sees it): one run in the first frame in which it can turn stationary,
            # exactly when the full-rate detector would flip it. A stopped track that was
            # missed comes back via motion or the keepalive, as a lost moving one does.
            return "settle"
        return None

    def _relevant(self, region: RelBox, tracks: list[Track]) -> bool:
        # A stopped object fading into the running-average background leaves a "ghost" of
        # motion inside its own box for a few seconds; the keepalive (and the settle run)
        # cover it. Motion that spills out of the box (the car pulls away, someone walks
        # past) still counts.
        for track in tracks:
            if track.still and track.confirmed:
                x1, y1, x2, y2 = track.anchor
                mx, my = (x2 - x1) * _GHOST_MARGIN, (y2 - y1) * _GHOST_MARGIN
                if containment(region, (x1 - mx, y1 - my, x2 + mx, y2 + my)) >= _GHOST_INSIDE:
                    return False
        if not self._zones:
            return True
        margin = self._motion.zone_margin
        if any(box_near_zone(region, zone.polygon, margin) for zone in self._zones):
            return True
        return any(touches(region, t.box) for t in tracks)
