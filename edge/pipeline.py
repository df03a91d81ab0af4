"""One camera's pipeline: motion gate → detector → tracker → zone rules → events with snapshots.

`CameraPipeline.process(frame, now)` is synchronous and does no network or disk I/O: the
caller (the node app, the replay command, a test) owns the clock and the frames, so a replay
in simulated time gives the same events as a live run, and tests need no sleeps.

The detector runs only when it can change a decision (`edge.schedule.DetectorSchedule`); with
the motion gate disabled it runs on every frame.

An event ends when its object is gone: a stationary object that the detector misses is gone
when its place looks like the empty scene again (`edge.vacancy`), not when its track expires.

What a transition publishes (ids, evidence, snapshot) is built by `edge.events`.
"""

from __future__ import annotations

import logging
import time
import zoneinfo
from collections import deque
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
from pydantic import JsonValue

from contract import EventPhase, ObjectCategory
from edge import imaging
from edge.actions import ActionRequest, ActionSink
from edge.boxes import RelBox, area, containment, iou
from edge.camera_config import CameraConfig, ElevatorZone
from edge.detector import Detection, Detector
from edge.events import BestSighting, EventBuilder, EventIdFactory, EventOut
from edge.motion import MotionGate
from edge.rules import Condition, EventLifecycle, RuleContext, Transition, ZoneRule, make_rule
from edge.rules.base import is_gone
from edge.schedule import DetectorSchedule
from edge.stationary_memory import Remembered, StationaryMemory
from edge.tracker import Track, Tracker, TrackInput
from edge.vacancy import looks_empty
from edge.zones import ZoneMemberships

log = logging.getLogger(__name__)

# A conditioned box this much inside a larger conditioned box is a part of that object.
_PART_OF = 0.8
# Inference percentiles cover the last calls: ~40 s at 5 fps, recent enough for a heartbeat.
_TIMING_WINDOW = 200
# The empty scene is frozen under tracked boxes grown by this fraction of their size: between
# two detector runs a moving object has moved on a little.
_HOLD_MARGIN = 0.25
# The "before" photo a remembered object keeps (a zombie ticket shows it beside "now").
_PHOTO_WIDTH = 480
_PHOTO_QUALITY = 70
# With no zone to say how fast, a gone object's track is removed after this many seconds.
_DEFAULT_END_AFTER_S = 3.0

RuleKey = tuple[str, str]
"""(zone id, rule): one zone may name several rules."""


@dataclass(frozen=True)
class PipelineStats:
    """Counters since the pipeline was built; timings over the last 200 detector calls."""

    frames_processed: int
    detector_calls: int
    inference_ms_p50: float | None
    inference_ms_p95: float | None
    detector_duty: float
    events_published: int
    lighting_changes: int
    tracks: int


class CameraPipeline:
    """Frames in, DetectionEvents (with snapshots) out, for one camera."""

    def __init__(
        self,
        config: CameraConfig,
        detector: Detector,
        actions: ActionSink,
        *,
        site_id: str,
        device_id: str,
        memory: StationaryMemory | None = None,
    ) -> None:
        self.config = config
        self.memory = memory or StationaryMemory(config.tracker.remember_stationary_s)
        """Stationary objects of this camera; the caller saves it (`memory.dirty`)."""
        self._detector = detector
        self._actions = actions
        self._site_id = site_id
        self._device_id = device_id
        self._tz = zoneinfo.ZoneInfo(config.timezone)
        self._gate = MotionGate(config.motion)
        self._schedule = DetectorSchedule(config)
        self._tracker = Tracker(config.tracker)
        self._memberships = ZoneMemberships(config.zones)
        self._rules: list[tuple[RuleKey, ZoneRule]] = [
            ((zone.id, zone.rule.value), make_rule(zone)) for zone in config.zones
        ]
        self._zones = {(zone.id, zone.rule.value): zone for zone in config.zones}
        self._lifecycles = {
            key: EventLifecycle(zone.update_interval_s, self._event_id_factory(*key))
            for key, zone in self._zones.items()
        }
        self._end_after_s = max(
            (zone.end_after_s for zone in config.zones), default=_DEFAULT_END_AFTER_S
        )
        self._best: dict[tuple[RuleKey, int], BestSighting] = {}
        self._judgeable: dict[int, bool] = {}
        """Per stationary track: can its absence be seen (`_check_vacancy`)?"""
        self._scene_since = float("-inf")
        self._last_tracks: dict[int, Track] = {}
        self._frames = 0
        self._calls = 0
        self._events = 0
        self._lighting = 0
        self._timings: deque[float] = deque(maxlen=_TIMING_WINDOW)
        self._size: tuple[int, int] | None = None
        self._builder = EventBuilder(config, site_id, device_id)

    def _event_id_factory(self, zone_id: str, rule: str) -> EventIdFactory:
        # A zone with one rule keeps the ids it always had; a second rule of the same zone
        # must not produce the same id for the same track.
        shared = sum(1 for z in self.config.zones if z.id == zone_id) > 1
        return EventIdFactory(
            self._site_id,
            self._device_id,
            self.config.camera_id,
            f"{zone_id}|{rule}" if shared else zone_id,
        )

    def process(self, frame: npt.NDArray[np.uint8], now: float) -> list[EventOut]:
        """Run one frame taken at `now` (epoch seconds) through the pipeline.

        Returns the events to publish, in order. Raises `edge.imaging.ImageError` for a frame
        that is not an HxWx3 uint8 array; the pipeline's state is unchanged by a bad frame.
        """
        imaging.check_frame(frame)
        h, w = frame.shape[:2]
        if self._size is not None and self._size != (w, h):
            self._gate.reset()  # a reconnect may change the resolution
            self._warn_aspect(w, h)
            self._scene_since = now
        elif self._size is None:
            self._warn_aspect(w, h)
            self._scene_since = now
        self._size = (w, h)
        self._frames += 1
        tracks = self._tracker.tracks
        motion = self._gate.update(frame, [_grown(t.box) for t in tracks if t.confirmed])
        if motion.lighting_change:
            self._lighting += 1
        ran = self._schedule.should_run(motion, tracks, self._memberships, now)
        if ran:
            self._run_detector(frame, now, w, h)
            self._gate.absorb(_explained(motion.regions, self._tracker.tracks))
        self._check_vacancy(now, ran=ran)
        tracks = self._tracker.tracks
        local = datetime.fromtimestamp(now, self._tz).time()
        ctx = RuleContext(now=now, local_time=local, tracks=tracks, memberships=self._memberships)
        out: list[EventOut] = []
        for key, rule in self._rules:
            zone = self._zones[key]
            conditions = _one_per_object(rule.evaluate(ctx), tracks)
            for track_id in conditions:
                self._remember_best(key, track_id, frame)
            for transition in self._lifecycles[key].step(conditions, now):
                out.append(self._publish(key, rule, transition, frame, now))
                if transition.phase is EventPhase.START and isinstance(zone, ElevatorZone):
                    self._fire_actions(zone, transition)
            for best in [k for k in self._best if k[0] == key]:
                if best[1] not in conditions:
                    del self._best[best]
        self._last_tracks = {t.track_id: t for t in tracks}
        self._events += len(out)
        return out

    def _warn_aspect(self, w: int, h: int) -> None:
        res = self.config.resolution
        if res is not None and abs(res[0] / res[1] - w / h) > 0.01:
            log.warning(
                "camera %s: stream is %dx%d but the config's resolution is %dx%d; zones drawn "
                "in pixels are misplaced",
                self.config.camera_id,
                w,
                h,
                *res,
            )

    def _check_vacancy(self, now: float, *, ran: bool) -> None:
        """Mark stationary tracks whose place looks empty; remove the ones that are gone."""
        live: set[int] = set()
        for track in self._tracker.tracks:
            live.add(track.track_id)
            if not (track.confirmed and track.stationary):
                continue
            patches = self._gate.patches(track.anchor)
            empty = patches is not None and looks_empty(*patches)
            if ran and track.seen_last_update:
                # The detector sees it (observe() cleared vacant_since). Decided once, when it
                # is first seen stationary: an object there since before the empty scene was
                # learnt (the car parked since start-up) is part of that scene, and its place
                # looks "empty" while it stands there; its absence cannot be seen, only its
                # track expire. (Deciding later would let a passer-by in front decide.)
                if track.track_id not in self._judgeable:
                    self._judgeable[track.track_id] = (
                        track.first_seen > self._scene_since and not empty
                    )
                continue
            if not self._judgeable.get(track.track_id, False):
                continue
            if empty:
                self._tracker.mark_vacant(track.track_id, track.vacant_since or now)
            else:
                self._tracker.mark_vacant(track.track_id, None)
            if is_gone(track, now, self._end_after_s):
                self._tracker.remove(track.track_id)
                self._memberships.forget(track.track_id)
                self.memory.forget(track.track_id)
        self._judgeable = {k: v for k, v in self._judgeable.items() if k in live}

    def _run_detector(self, frame: npt.NDArray[np.uint8], now: float, w: int, h: int) -> None:
        started = time.perf_counter()
        detections = self._detector.detect(frame)
        self._timings.append((time.perf_counter() - started) * 1000)
        self._calls += 1
        self._schedule.last_run = now
        inputs = [i for d in detections if (i := _track_input(d, w, h)) is not None]
        dropped = self._tracker.update(inputs, now)
        for track in dropped:
            self._memberships.forget(track.track_id)
            self.memory.unlink(track.track_id)  # lost, not gone: it may be found again
        self._memberships.observe(self._tracker.tracks, now)
        self._remember(frame, now)

    def _remember(self, frame: npt.NDArray[np.uint8], now: float) -> None:
        """Keep the stationary-object memory in step; re-found objects inherit their clock."""
        for track in self._tracker.tracks:
            if not track.confirmed:
                continue
            tid = track.track_id
            known = self.memory.linked(tid)
            if not track.stationary:
                if known is not None:
                    self.memory.forget(tid)  # it moved off
                continue
            if not track.seen_last_update:
                continue
            if known is not None:
                self.memory.seen(tid, now)
                continue
            look = imaging.look(frame, track.anchor)
            found = self.memory.recall(track.category, track.anchor, look)
            if found is not None:
                found.last_seen = now
                self.memory.link(tid, found)
                self._tracker.inherit(tid, found.since)
                self._memberships.inherit(track, found.since)
                continue
            photo = imaging.encode_jpeg(
                imaging.resize_to_width(frame, _PHOTO_WIDTH), _PHOTO_QUALITY
            )
            self.memory.add(
                tid,
                Remembered(
                    category=track.category,
                    class_name=track.class_name,
                    box=track.anchor,
                    since=track.anchor_since,
                    last_seen=now,
                    look=look,
                    photo=photo,
                ),
            )
        self.memory.expire(now)

    def _remember_best(self, rule: RuleKey, track_id: int, frame: npt.NDArray[np.uint8]) -> None:
        track = self._track_for(track_id)
        if track is None:
            return
        key = (rule, track_id)
        best = self._best.get(key)
        if best is not None and (not track.seen_last_update or track.score <= best.score):
            return
        others = [
            (t.box, t.class_name)
            for t in self._tracker.tracks
            if t.track_id != track_id and t.confirmed and t.category is not ObjectCategory.PERSON
        ]
        persons = [t.box for t in self._tracker.tracks if t.category is ObjectCategory.PERSON]
        self._best[key] = BestSighting(track.score, frame.copy(), track.box, others, persons)

    def _publish(
        self,
        key: RuleKey,
        rule: ZoneRule,
        tr: Transition,
        frame: npt.NDArray[np.uint8],
        now: float,
    ) -> EventOut:
        return self._builder.build(
            rule,
            self._zones[key],
            tr,
            track=self._track_for(tr.track_id),
            frame=frame,
            now=now,
            best=self._best.get((key, tr.track_id)),
            tracks=self._tracker.tracks,
            before=self.memory.linked(tr.track_id),
            model=self._detector.manifest.ref,
        )

    def _track_for(self, track_id: int) -> Track | None:
        for track in self._tracker.tracks:
            if track.track_id == track_id:
                return track
        return self._last_tracks.get(track_id)  # dropped this frame: its last state

    def _fire_actions(self, zone: ElevatorZone, tr: Transition) -> None:
        for action in zone.actions:
            params: dict[str, JsonValue] = {"track_id": tr.track_id}
            if action == "voice_warning":
                params["text"] = zone.voice_text
            request = ActionRequest(
                action=action,
                camera_id=self.config.camera_id,
                zone_id=zone.id,
                event_id=tr.event_id,
                reason=f"two-wheeler in elevator cabin (track {tr.track_id})",
                params=params,
            )
            try:
                self._actions.fire(request)
            except Exception:  # a sink failure must never stop the frame loop
                log.exception("action sink failed for %s", action)

    def flush(self) -> list[EventOut]:
        """Nothing to judge at the end of a source: every rule here decides frame by frame,
        and stationary objects carry over in the memory file (the facade pipeline's falls
        do not: see `FacadePipeline.flush`)."""
        return []

    def stats(self) -> PipelineStats:
        """Counters and detector timing percentiles."""
        timings = sorted(self._timings)
        p50 = float(np.percentile(timings, 50)) if timings else None
        p95 = float(np.percentile(timings, 95)) if timings else None
        return PipelineStats(
            frames_processed=self._frames,
            detector_calls=self._calls,
            inference_ms_p50=p50,
            inference_ms_p95=p95,
            detector_duty=self._calls / self._frames if self._frames else 0.0,
            events_published=self._events,
            lighting_changes=self._lighting,
            tracks=len(self._tracker.tracks),
        )


def _grown(box: RelBox) -> RelBox:
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * _HOLD_MARGIN, (y2 - y1) * _HOLD_MARGIN
    return (max(0.0, x1 - mx), max(0.0, y1 - my), min(1.0, x2 + mx), min(1.0, y2 + my))


def _explained(regions: list[RelBox], tracks: list[Track]) -> list[RelBox]:
    """Motion regions the detector run has explained: nothing moving there, or a still object."""
    moving = [t.box for t in tracks if t.seen_last_update and not t.still]
    return [
        r for r in regions if not any(iou(r, box) > 0 or containment(box, r) > 0 for box in moving)
    ]


def _one_per_object(conditions: dict[int, Condition], tracks: list[Track]) -> dict[int, Condition]:
    """Drop conditions of tracks whose box lies inside another conditioned track's box.

    The detector sometimes reports a part of an object as a second object of the same class
    (the rear half of a bicycle); NMS keeps both because their IoU is low. One object, one event.
    """
    if len(conditions) < 2:
        return conditions
    boxes = {t.track_id: t.box for t in tracks if t.track_id in conditions}

    kept = dict(conditions)
    for tid, box in boxes.items():
        for other, obox in boxes.items():
            if other != tid and area(obox) > area(box) and containment(box, obox) >= _PART_OF:
                kept.pop(tid, None)
                break
    return kept


def _track_input(det: Detection, w: int, h: int) -> TrackInput | None:
    # Unmapped classes (a dog) are reported by the detector but never tracked; a box clipped
    # to nothing at the frame's edge has no bottom-centre to place in a zone.
    if det.category is None:
        return None
    box = det.relative(w, h)
    if box[2] <= box[0] or box[3] <= box[1]:
        return None
    return TrackInput(box=box, score=det.score, class_name=det.class_name, category=det.category)
