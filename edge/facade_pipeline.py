"""A facade camera's pipeline: motion blobs → fall tracks → thrown-object events (no detector).

`FacadePipeline.process(frame, now)` has the interface of `edge.pipeline.CameraPipeline`:
synchronous, no network or disk I/O, `now` from the caller. A camera whose zones are
`thrown_object` zones gets this pipeline instead of the detector one (`make_pipeline`).

Per frame: the motion gate (`edge.motion`, at 320 px or more: thrown objects are small) gives
changed regions; regions no larger than the zone's ``max_blob_area`` whose centre lies in the
zone become blobs; `edge.falls.FallTracker` links them; every ended track is judged
(`edge.falls.judge`). A thrown object gives a `start` and an `end` event at once (it is over
when it is seen): its snapshot is the last frame with the trajectory, the fitted parabola and
the estimated floor and column drawn, above a strip of frames from the fall.

The contract has no field for the floor: it is in the event's ``object_class`` ("object from
floor 7, column C") and on the snapshot.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from contract import (
    BoxEvidence,
    DetectionEvent,
    EventCategory,
    EventPhase,
    ModelRef,
    ObjectCategory,
    Severity,
)
from edge import imaging, snapshot
from edge.camera_config import CameraConfig, MotionConfig, ThrownObjectZone
from edge.events import EventOut, digest
from edge.falls import Blob, FallTrack, FallTracker, Verdict, judge
from edge.motion import MotionGate
from edge.pipeline import PipelineStats
from edge.stationary_memory import StationaryMemory
from edge.zones import point_in_polygon

_MODEL = ModelRef(name="falls", version="1")
_GATE_WIDTH = 320
_STRIP = 5  # frames in the evidence strip
_HISTORY_S = 4.0  # frames kept for the strip: the longest fall in view (~20 m) takes 2 s
_MAX_BOXES = 32


def is_facade_camera(config: CameraConfig) -> bool:
    """True if the camera watches for thrown objects (and so runs without a detector)."""
    return any(isinstance(zone, ThrownObjectZone) for zone in config.zones)


@dataclass(frozen=True)
class _Shot:
    t: float
    small: imaging.Image


class FacadePipeline:
    """Frames in, thrown-object events (with snapshots) out, for one facade camera."""

    def __init__(self, config: CameraConfig, *, site_id: str, device_id: str) -> None:
        zones = [z for z in config.zones if isinstance(z, ThrownObjectZone)]
        if not zones:
            raise ValueError(f"camera {config.camera_id} has no thrown_object zone")
        self.config = config
        self._zone = zones[0]  # validated: a facade camera has thrown_object zones only
        self._zones = zones
        self._site_id = site_id
        self._device_id = device_id
        motion = config.motion
        self._gate = MotionGate(
            MotionConfig(
                width=max(motion.width, _GATE_WIDTH),
                threshold=motion.threshold,
                min_area=min(z.min_blob_area for z in zones),
                alpha=motion.alpha,
                global_change=motion.global_change,
            )
        )
        self._tracker = FallTracker()
        self._history: deque[_Shot] = deque()
        self.memory = StationaryMemory(remember_s=1.0)
        """Unused (a facade camera follows no stationary objects); for the node app's saver."""
        self._frames = 0
        self._events = 0
        self._lighting = 0
        self._last: imaging.Image | None = None

    def process(self, frame: imaging.Image, now: float) -> list[EventOut]:
        """Run one frame taken at `now`; returns the events to publish, in order."""
        imaging.check_frame(frame)
        self._frames += 1
        self._last = frame
        motion = self._gate.update(frame)
        if motion.lighting_change:
            self._lighting += 1
        blobs = self._blobs(motion.regions)
        self._history.append(_Shot(now, imaging.resize_to_width(frame, _GATE_WIDTH)))
        while self._history and now - self._history[0].t > _HISTORY_S:
            self._history.popleft()
        out: list[EventOut] = []
        for track in self._tracker.update(blobs, now):
            out.extend(self._judge(track, frame))
        self._events += len(out)
        return out

    def flush(self) -> list[EventOut]:
        """Judge the tracks still open (end of a clip)."""
        out: list[EventOut] = []
        if self._last is not None:
            for track in self._tracker.flush():
                out.extend(self._judge(track, self._last))
        self._events += len(out)
        return out

    def _blobs(self, regions: list[tuple[float, float, float, float]]) -> list[Blob]:
        blobs = []
        for x1, y1, x2, y2 in regions:
            area = (x2 - x1) * (y2 - y1)
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            for zone in self._zones:
                if area <= zone.max_blob_area and point_in_polygon(cx, cy, zone.polygon):
                    blobs.append(Blob(cx, cy, area))
                    break
        return blobs

    def _judge(self, track: FallTrack, frame: imaging.Image) -> list[EventOut]:
        for zone in self._zones:
            verdict = judge(track, zone)
            if verdict is not None:
                return self._publish(zone, track, verdict, frame)
        return []

    def _publish(
        self, zone: ThrownObjectZone, track: FallTrack, verdict: Verdict, frame: imaging.Image
    ) -> list[EventOut]:
        t0, t1 = track.points[0][0], track.points[-1][0]
        root = digest(self._site_id, self._device_id, self.config.camera_id, zone.id, t0)
        event_id = f"ev-{root[:20]}"
        where = f"object from floor {verdict.floor}"
        if verdict.column is not None:
            where += f", column {verdict.column}"
        jpeg, ref = None, None
        if self.config.snapshot.enabled:
            image = self._evidence(zone, track, verdict, frame, where)
            jpeg, ref = snapshot.encode(image, self.config.snapshot, f"snap-{root[:20]}-0")
        step = max(1, len(track.points) // _MAX_BOXES + 1)
        boxes = [BoxEvidence(ts=t, box=_dot(x, y), score=1.0) for t, x, y in track.points[::step]][
            :_MAX_BOXES
        ]
        score = max(0.0, min(1.0, 1.0 - abs(verdict.g_ratio - 1.0)))
        common = {
            "site_id": self._site_id,
            "device_id": self._device_id,
            "event_id": event_id,
            "category": EventCategory.THROWN_OBJECT,
            "severity": Severity.URGENT,
            "camera_id": self.config.camera_id,
            "zone_id": zone.id,
            "track_id": track.track_id % 2**31,
            "object_class": where,
            "object_category": ObjectCategory.LITTER_CANDIDATE,
            "score": score,
            "boxes": boxes,
            "dwell_s": t1 - t0,
            "started_at": t0,
            "model": _MODEL,
        }
        start = DetectionEvent(
            msg_id=digest(event_id, 0)[:32],
            ts=t1,
            phase=EventPhase.START,
            seq=0,
            snapshot=ref,
            **common,
        )
        end = DetectionEvent(
            msg_id=digest(event_id, 1)[:32],
            ts=t1,
            phase=EventPhase.END,
            seq=1,
            ended_at=t1,
            **common,
        )
        return [EventOut(start, jpeg), EventOut(end, None)]

    def _evidence(
        self,
        zone: ThrownObjectZone,
        track: FallTrack,
        verdict: Verdict,
        frame: imaging.Image,
        where: str,
    ) -> imaging.Image:
        image = frame.copy()
        imaging.draw_polygon(image, zone.polygon, (0, 200, 255))
        fit = verdict.fit
        curve = [(fit.x_at(t), fit.y_at(t)) for t in np.linspace(verdict.t_top, fit.duration, 40)]
        imaging.draw_fall(
            image,
            curve,
            [(x, y) for _, x, y in track.points],
            verdict.top,
            f"{where} (a = {verdict.g_ratio:.2f} g)",
        )
        t0, t1 = track.points[0][0], track.points[-1][0]
        shots = [s for s in self._history if t0 - 0.3 <= s.t <= t1 + 0.1]
        if shots:
            picks = [shots[round(i * (len(shots) - 1) / (_STRIP - 1))] for i in range(_STRIP)]
            image = imaging.strip_below(image, [s.small for s in picks])
        return imaging.resize_to_width(image, self.config.snapshot.max_width)

    def stats(self) -> PipelineStats:
        """Counters (no detector: its fields are zero or None)."""
        return PipelineStats(
            frames_processed=self._frames,
            detector_calls=0,
            inference_ms_p50=None,
            inference_ms_p95=None,
            detector_duty=0.0,
            events_published=self._events,
            lighting_changes=self._lighting,
            tracks=len(self._tracker.tracks),
        )


def _dot(x: float, y: float) -> tuple[float, float, float, float]:
    r = 0.01
    return (max(0.0, x - r), max(0.0, y - r), min(1.0, x + r), min(1.0, y + r))
