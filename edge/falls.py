"""Objects thrown from height (高空抛物): blobs linked into tracks, judged by physics (pure).

A camera at the foot of a building looks up at its facade at 15-25 fps, without the object
detector. The facade pipeline (`edge.facade_pipeline`) turns each frame's motion into small
*blobs* (centre, area; relative coordinates). Here:

- `FallTracker` links blobs across frames into tracks: each track predicts where its object
  is now (constant acceleration once it has three points, constant velocity before) and takes
  the nearest blob within a gate that grows with the track's speed. A track that finds no blob
  for ``max_gap_s`` has ended: the object landed, went behind something or left the frame.
- `fit_fall` fits y(t) = y0 + v t + a t^2 / 2 and x(t) = x0 + u t by least squares.
- `judge` fires when the fit is a fall: enough points, small residuals, clearly curved (a
  straight line fits far worse), downward, and an
  acceleration consistent with gravity at the facade's scale (`FacadeCalibration`: the floor
  lines give pixels per metre over the heights the track crossed). From the top of the fitted
  trajectory (its vertex, or the first sighting if the object was thrown downwards) it
  estimates the floor and the window column the object came from.

What it must not fire on, and why it does not: a bird flies (its path is no parabola, or it
rises), a leaf flutters down at a near-constant speed (acceleration far below g), rain falls
at a constant speed (no acceleration; tiny streaks), a person walking past or a lift cage are
large blobs (area limit) moving at a constant speed, and a lighting change is relearnt by the
motion gate without any blob.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.camera_config import FacadeCalibration, ThrownObjectZone

G = 9.81
"""Gravity, m/s^2."""
# The first sightings of a track: how far a blob may be from the prediction, as a fraction of
# the frame plus the distance the track's speed covers in one gap (objects falling 20 m reach
# ~20 m/s: 30+ px per frame at 20 fps).
_GATE = 0.04
_GATE_SPEED = 0.5
_MAX_SPEED = 3.0  # frame heights per second: more is noise, not an object
_TOP_BEFORE_FIRST_S = 0.5
# The parabola's residual must be this many times smaller than a straight line's...
_CURVATURE_GAIN = 3.0
# ...counting residuals below the blob-centre noise (~1 px of 480) as that noise.
_NOISE_RMS = 0.002  # the vertex may be extrapolated this far before the first sighting


@dataclass(frozen=True)
class Blob:
    """A small moving region in one frame (relative coordinates)."""

    x: float
    y: float
    area: float


@dataclass
class FallTrack:
    """One linked sequence of blobs."""

    track_id: int
    points: list[tuple[float, float, float]] = field(default_factory=list)  # (t, x, y)
    areas: list[float] = field(default_factory=list)

    @property
    def last_t(self) -> float:
        """Time of the last point."""
        return self.points[-1][0]

    def predict(self, t: float) -> tuple[float, float, float]:
        """(x, y, speed) expected at `t`; speed in frame units per second."""
        ts = np.array([p[0] for p in self.points])
        xs = np.array([p[1] for p in self.points])
        ys = np.array([p[2] for p in self.points])
        if len(ts) == 1:
            return xs[0], ys[0], 0.0
        recent = slice(-6, None)
        dt = ts[recent] - ts[-1]
        deg = 2 if len(dt) >= 3 else 1
        cy = np.polyfit(dt, ys[recent], deg)
        cx = np.polyfit(dt, xs[recent], 1)
        h = t - ts[-1]
        vy = float(np.polyval(np.polyder(cy), 0.0))
        return (
            float(np.polyval(cx, h)),
            float(np.polyval(cy, h)),
            float(np.hypot(cx[0], vy)),
        )


class FallTracker:
    """Links blobs into tracks; `update` returns the tracks that ended."""

    def __init__(self, max_gap_s: float = 0.25) -> None:
        self._max_gap_s = max_gap_s
        self._tracks: list[FallTrack] = []
        self._next_id = 1

    @property
    def tracks(self) -> list[FallTrack]:
        """Live tracks."""
        return list(self._tracks)

    def update(self, blobs: list[Blob], now: float) -> list[FallTrack]:
        """Fold in the blobs of the frame at `now`."""
        # Tracks silent for longer than the gap have ended before this frame: a blob now is
        # another object (a ghost left at a drop's first place must not join a later one).
        ended = [t for t in self._tracks if now - t.last_t > self._max_gap_s]
        self._tracks = [t for t in self._tracks if now - t.last_t <= self._max_gap_s]
        free = list(blobs)
        # Longer tracks choose first: an established fall keeps its object through clutter.
        for track in sorted(self._tracks, key=lambda t: -len(t.points)):
            if not free:
                break
            x, y, speed = track.predict(now)
            dt = now - track.last_t
            gate = (
                _GATE
                + _GATE_SPEED * min(speed, _MAX_SPEED) * dt
                + _MAX_SPEED * dt * (len(track.points) == 1)
            )
            best = min(free, key=lambda b: (b.x - x) ** 2 + (b.y - y) ** 2)
            if (best.x - x) ** 2 + (best.y - y) ** 2 <= gate**2:
                track.points.append((now, best.x, best.y))
                track.areas.append(best.area)
                free.remove(best)
        for blob in free:
            self._tracks.append(FallTrack(self._next_id, [(now, blob.x, blob.y)], [blob.area]))
            self._next_id += 1
        return ended

    def flush(self) -> list[FallTrack]:
        """End every live track (the clip is over)."""
        ended, self._tracks = self._tracks, []
        return ended


@dataclass(frozen=True)
class FallFit:
    """Least-squares fit of a track, relative units (frame heights and widths), t from start."""

    t0: float
    duration: float
    y0: float
    vy: float
    ay: float
    x0: float
    vx: float
    rms_y: float
    rms_x: float
    rms_line: float
    """RMS residual of the best straight line y(t): how much the curvature explains."""
    n: int

    def y_at(self, t: float) -> float:
        """Fitted y at `t` seconds after t0."""
        return self.y0 + self.vy * t + 0.5 * self.ay * t * t

    def x_at(self, t: float) -> float:
        """Fitted x at `t` seconds after t0."""
        return self.x0 + self.vx * t


def fit_fall(track: FallTrack) -> FallFit | None:
    """The parabola through a track's points; None with fewer than 4 points."""
    if len(track.points) < 4:
        return None
    pts = np.array(track.points, dtype=np.float64)
    t = pts[:, 0] - pts[0, 0]
    cy = np.polyfit(t, pts[:, 2], 2)
    cx = np.polyfit(t, pts[:, 1], 1)
    rms_y = float(np.sqrt(np.mean((np.polyval(cy, t) - pts[:, 2]) ** 2)))
    rms_x = float(np.sqrt(np.mean((np.polyval(cx, t) - pts[:, 1]) ** 2)))
    line = np.polyfit(t, pts[:, 2], 1)
    rms_line = float(np.sqrt(np.mean((np.polyval(line, t) - pts[:, 2]) ** 2)))
    return FallFit(
        t0=float(pts[0, 0]),
        duration=float(t[-1]),
        y0=float(cy[2]),
        vy=float(cy[1]),
        ay=float(2 * cy[0]),
        x0=float(cx[1]),
        vx=float(cx[0]),
        rms_y=rms_y,
        rms_x=rms_x,
        rms_line=rms_line,
        n=len(t),
    )


def metres_per_unit(facade: FacadeCalibration, y_top: float, y_bottom: float) -> float:
    """Metres per frame height between two image heights, from the floor lines."""
    lines = facade.lines()  # (y, height in metres), y decreasing as height grows
    ys = np.array([y for y, _ in lines])[::-1]
    hs = np.array([h for _, h in lines])[::-1]
    top = float(np.interp(y_top, ys, hs))
    bottom = float(np.interp(y_bottom, ys, hs))
    return (top - bottom) / max(y_bottom - y_top, 1e-6)


@dataclass(frozen=True)
class Verdict:
    """A thrown object: where it came from and the fit that says so."""

    floor: int
    column: str | None
    top: tuple[float, float]
    t_top: float
    """When the object was at the top, seconds after the fit's t0 (negative: before it)."""
    fit: FallFit
    g_ratio: float
    """Fitted acceleration over gravity at the facade's scale (1.0 = free fall)."""


def judge(track: FallTrack, zone: ThrownObjectZone) -> Verdict | None:  # noqa: PLR0911 - one return per test
    """The verdict on an ended track: a thrown object, or None."""
    if len(track.points) < zone.min_points or max(track.areas) > zone.max_blob_area:
        return None
    fit = fit_fall(track)
    if fit is None or fit.ay <= 0:
        return None
    ys = [p[2] for p in track.points]
    drop = ys[-1] - ys[0]
    if drop < zone.min_drop:
        return None
    # Residuals: a fall is smooth; a bird's path or a fluttering leaf is not.
    if fit.rms_y > zone.max_rms or fit.rms_x > zone.max_rms:
        return None
    # Falling at a constant speed (rain, a leaf at its terminal speed, a lift cruising) is a
    # straight line in y(t): the parabola must explain the path far better than a line does.
    if fit.rms_line < _CURVATURE_GAIN * max(fit.rms_y, _NOISE_RMS):
        return None
    facade = zone.facade
    scale = metres_per_unit(facade, min(ys), max(ys))
    g_ratio = fit.ay * scale / G
    if abs(g_ratio - 1.0) > zone.g_tolerance:
        return None
    # The top of the trajectory is its vertex: dropped from rest, the object is usually first
    # seen a frame or two below the window, and the vertex extrapolates back to it; thrown
    # upwards, the vertex is in the track. Thrown downwards, the vertex would lie above the
    # window: it may not be more than half a second before the first sighting.
    t_top = min(max(-fit.vy / fit.ay, -_TOP_BEFORE_FIRST_S), fit.duration)
    top = (fit.x_at(t_top), fit.y_at(t_top))
    return Verdict(facade.floor_at(top[1]), facade.column_at(top[0]), top, t_top, fit, g_ratio)
