"""Multi-object tracker with a stationary state, on numpy + scipy (pure: `now` is passed in).

Why not norfair (Frigate's tracker)? We need three things it does not give directly: a
stationary state whose dwell clock survives detector misses and partial occlusion, time-based
(not frame-based) ageing because the motion gate runs the detector irregularly, and tracks
kept per object category. A ByteTrack-style associator is ~200 lines here: Hungarian
assignment (scipy) on IoU against constant-velocity predictions, per category.

Stationary handling (Frigate's most reported pain is parked cars re-alerting):

- Each track has an *anchor* box and the time it was set. While new boxes overlap the anchor
  (IoU >= ``stationary_iou``), the anchor stays; after ``stationary_s`` the track is stationary
  and ``stationary_since`` is the anchor's time.
- A stationary track ignores odd boxes: a box that lies mostly inside the anchor (a passer-by
  hides part of the car) is occlusion, not movement. Only ``moved_confirmations`` displaced
  boxes in a row make it moving again, with a new anchor.
- A stationary track that the detector misses is kept for ``max_lost_stationary_s`` (moving
  tracks: ``max_lost_s``), so its dwell timer survives misses and occlusion. Whether a missed
  object is hidden or gone is decided from the image (`edge.vacancy`): the pipeline marks a
  track whose place looks empty (`mark_vacant`) and removes it once it is gone (`remove`).
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from contract import ObjectCategory
from edge.boxes import RelBox, containment, iou
from edge.camera_config import TrackerConfig

# A box this much inside the anchor is an occluded view of the same parked object.
_OCCLUSION_CONTAINMENT = 0.85
_HISTORY = 32


@dataclass(frozen=True)
class TrackInput:
    """One detection, box relative to the frame."""

    box: RelBox
    score: float
    class_name: str
    category: ObjectCategory


@dataclass(frozen=True)
class Sighting:
    """A detection that was assigned to a track: evidence for events."""

    ts: float
    box: RelBox
    score: float


@dataclass
class Track:
    """One tracked object. Read it; only the `Tracker` changes it."""

    track_id: int
    category: ObjectCategory
    class_name: str
    box: RelBox
    score: float
    best_score: float
    first_seen: float
    last_seen: float
    anchor: RelBox
    anchor_since: float
    last_box: RelBox
    hits: int = 1
    confirmed: bool = False
    stationary: bool = False
    moved_streak: int = 0
    consecutive_hits: int = 1
    missed_runs: int = 0
    seen_last_update: bool = True
    velocity: tuple[float, float] = (0.0, 0.0)
    vacant_since: float | None = None
    """Since when the object's place looks like the empty scene (None: something is there)."""
    history: deque[Sighting] = field(default_factory=lambda: deque(maxlen=_HISTORY))

    @property
    def stationary_since(self) -> float | None:
        """When the object stopped moving, or None while it moves."""
        return self.anchor_since if self.stationary else None

    @property
    def still(self) -> bool:
        """True if the last sighting did not move the anchor (the object may be stopping).

        Always true while stationary. A moving track resets its anchor on every sighting, so
        for it the anchor is as recent as the last sighting.
        """
        return self.stationary or self.anchor_since < self.last_seen

    @property
    def bottom_centre(self) -> tuple[float, float]:
        """The point that decides zone membership: where the object touches the ground."""
        x1, _, x2, y2 = self.box
        return ((x1 + x2) / 2, y2)

    def predicted(self, now: float) -> RelBox:
        """Constant-velocity guess of where a moving track is now."""
        if self.stationary:
            return self.anchor
        dt = min(now - self.last_seen, 1.0)  # never extrapolate far: lost tracks stay put
        vx, vy = self.velocity
        x1, y1, x2, y2 = self.box
        return (x1 + vx * dt, y1 + vy * dt, x2 + vx * dt, y2 + vy * dt)


def _match_score(track: Track, box: RelBox, now: float) -> float:
    """How well a detection's box fits a track (IoU-like, 0..1); the assignment maximises it."""
    score = iou(track.predicted(now), box)
    if track.stationary:
        # Occluded views lie inside the anchor; a departing car moves on from its last raw
        # box. Both must still find their track.
        score = max(score, 0.5 * containment(box, track.anchor), iou(track.last_box, box))
    return score


class Tracker:
    """Associates detections across detector calls; call `update` after every detector run."""

    def __init__(self, config: TrackerConfig) -> None:
        self._config = config
        self._tracks: dict[int, Track] = {}
        self._ids = itertools.count(1)

    @property
    def tracks(self) -> list[Track]:
        """Live tracks, oldest first."""
        return list(self._tracks.values())

    def confirmed(self) -> list[Track]:
        """Tracks seen often enough to be trusted."""
        return [t for t in self._tracks.values() if t.confirmed]

    def mark_vacant(self, track_id: int, since: float | None) -> None:
        """Record since when a track's place looks empty (None: it does not)."""
        if (track := self._tracks.get(track_id)) is not None:
            track.vacant_since = since

    def inherit(self, track_id: int, since: float) -> None:
        """A stationary track is an object known to stand here since `since` (re-found)."""
        track = self._tracks.get(track_id)
        if track is not None and track.stationary and since < track.anchor_since:
            track.anchor_since = since

    def remove(self, track_id: int) -> Track | None:
        """Drop a track whose object is gone; returns it (None if unknown)."""
        return self._tracks.pop(track_id, None)

    def update(self, detections: list[TrackInput], now: float) -> list[Track]:
        """Assign `detections` (one detector run at time `now`); returns the dropped tracks."""
        unmatched = set(range(len(detections)))
        matched_tracks: set[int] = set()
        for category in {d.category for d in detections}:
            tracks = [t for t in self._tracks.values() if t.category is category]
            idx = [i for i, d in enumerate(detections) if d.category is category]
            if not tracks:
                continue
            score = np.array(
                [[_match_score(track, detections[i].box, now) for i in idx] for track in tracks],
                dtype=np.float64,
            )
            rows, cols = linear_sum_assignment(-score)
            for r, c in zip(rows, cols, strict=True):
                if score[r, c] < self._config.match_iou:
                    continue
                self._observe(tracks[r], detections[idx[c]], now)
                matched_tracks.add(tracks[r].track_id)
                unmatched.discard(idx[c])
        dropped: list[Track] = []
        for track in list(self._tracks.values()):
            if track.track_id in matched_tracks:
                continue
            track.seen_last_update = False
            track.consecutive_hits = 0
            track.missed_runs += 1
            limit = (
                self._config.max_lost_stationary_s if track.stationary else self._config.max_lost_s
            )
            # Tentative tracks die on their first miss (ByteTrack): one-off ghosts stay cheap.
            if now - track.last_seen > limit or not track.confirmed:
                dropped.append(self._tracks.pop(track.track_id))
        for i in sorted(unmatched):
            det = detections[i]
            track = Track(
                track_id=next(self._ids),
                category=det.category,
                class_name=det.class_name,
                box=det.box,
                score=det.score,
                best_score=det.score,
                first_seen=now,
                last_seen=now,
                anchor=det.box,
                anchor_since=now,
                last_box=det.box,
                confirmed=self._config.min_hits <= 1,
            )
            track.history.append(Sighting(now, det.box, det.score))
            self._tracks[track.track_id] = track
        return dropped

    def _observe(self, track: Track, det: TrackInput, now: float) -> None:
        cfg = self._config
        track.hits += 1
        track.consecutive_hits += 1
        track.missed_runs = 0
        track.seen_last_update = True
        track.vacant_since = None
        track.confirmed = track.confirmed or track.hits >= cfg.min_hits
        track.score = det.score
        if det.score >= track.best_score:
            track.best_score = det.score
            track.class_name = det.class_name  # the most confident class wins (car vs truck)
        track.history.append(Sighting(now, det.box, det.score))
        track.last_box = det.box
        dt = now - track.last_seen
        still = iou(det.box, track.anchor) >= cfg.stationary_iou
        if track.stationary:
            occluded = containment(det.box, track.anchor) >= _OCCLUSION_CONTAINMENT
            if still or occluded:
                track.moved_streak = 0
            else:
                track.moved_streak += 1
                if track.moved_streak >= cfg.moved_confirmations:
                    track.stationary = False
                    track.moved_streak = 0
                    track.anchor, track.anchor_since = det.box, now
                    track.box = det.box
            # While stationary the anchor is the best estimate: odd boxes do not move it.
            track.box = track.anchor if track.stationary else det.box
        else:
            if dt > 0:
                vx = ((det.box[0] + det.box[2]) - (track.box[0] + track.box[2])) / 2 / dt
                vy = ((det.box[1] + det.box[3]) - (track.box[1] + track.box[3])) / 2 / dt
                track.velocity = (
                    0.5 * track.velocity[0] + 0.5 * vx,
                    0.5 * track.velocity[1] + 0.5 * vy,
                )
            track.box = det.box
            if not still:
                track.anchor, track.anchor_since = det.box, now
            elif now - track.anchor_since >= cfg.stationary_s:
                track.stationary = True
                track.velocity = (0.0, 0.0)
        track.last_seen = now
