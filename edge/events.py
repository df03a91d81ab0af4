"""The message a rule's transition becomes: a `DetectionEvent`, its evidence and its snapshot.

Event ids, message ids and snapshot ids are derived from (device, camera, zone, rule, track,
start time), so replaying the same clip with the same ``--start`` yields identical ids. The
snapshot of a ``start`` shows the track's best sighting while its condition held, not the
frame that happened to confirm it; a zombie vehicle's shows the photo kept when it stopped
beside the picture of now. Pure: `edge.pipeline` owns the frames, tracks and the clock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from contract import (
    BoxEvidence,
    DetectionEvent,
    EventCategory,
    EventPhase,
    ModelRef,
    ObjectCategory,
)
from edge import imaging, snapshot
from edge.boxes import RelBox
from edge.camera_config import CameraConfig, Zone
from edge.rules import Transition, ZoneRule
from edge.stationary_memory import Remembered
from edge.tracker import Track

# Sightings an event carries as evidence: enough to show the track's path, few enough to
# keep the event a few KB (the contract allows 32).
_EVIDENCE_BOXES = 8


@dataclass(frozen=True)
class EventOut:
    """One event to publish, and its JPEG (publish the snapshot first) if it has one."""

    event: DetectionEvent
    snapshot: bytes | None


@dataclass
class BestSighting:
    """The frame in which a conditioned track scored best, with what else was in view."""

    score: float
    frame: npt.NDArray[np.uint8]
    box: RelBox
    others: list[tuple[RelBox, str]]
    persons: list[RelBox]


def digest(*parts: object) -> str:
    """SHA-256 hex of the parts joined by ``|``: the root of every derived id."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


@dataclass(frozen=True)
class EventIdFactory:
    """Event ids of one zone (and rule) of one camera: ``ev-`` and 20 hex digits."""

    site_id: str
    device_id: str
    camera_id: str
    zone_id: str

    def __call__(self, track_id: int, since: float) -> str:
        root = digest(
            self.site_id, self.device_id, self.camera_id, self.zone_id, track_id, f"{since:.3f}"
        )
        return f"ev-{root[:20]}"


def _when(ts: float) -> str:
    return "since " + datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class EventBuilder:
    """Builds the events of one camera."""

    config: CameraConfig
    site_id: str
    device_id: str

    def build(
        self,
        rule: ZoneRule,
        zone: Zone,
        tr: Transition,
        *,
        track: Track | None,
        frame: npt.NDArray[np.uint8],
        now: float,
        best: BestSighting | None,
        tracks: list[Track],
        before: Remembered | None,
        model: ModelRef,
    ) -> EventOut:
        """The event (and JPEG) for transition `tr` of `rule` in `zone`, seen in `frame`.

        `track` is the transition's track (None if it is gone without a trace), `tracks` the
        camera's current tracks, `before` what the stationary memory kept of the track.
        """
        jpeg: bytes | None = None
        ref = None
        if self.config.snapshot.enabled and tr.phase is not EventPhase.UPDATE:
            if tr.phase is EventPhase.START and best is not None:
                image, box, others, persons = best.frame, best.box, best.others, best.persons
            else:
                image, box = frame, track.box if track else (0.0, 0.0, 0.0, 0.0)
                others = []
                persons = [t.box for t in tracks if t.category is ObjectCategory.PERSON]
            label = f"{track.class_name if track else '?'} {rule.category.value}"
            rendered = snapshot.render(
                image,
                snapshot.Overlay(zone.polygon, box, label, others, persons),
                self.config.snapshot,
            )
            if (
                tr.phase is EventPhase.START
                and rule.category is EventCategory.ZOMBIE_VEHICLE
                and before is not None
                and before.photo is not None
            ):
                # A ticket about days needs the first day too: the photo kept when it stopped.
                rendered = imaging.side_by_side(
                    imaging.decode_image(before.photo), rendered, (_when(before.since), "now")
                )
            snap_id = f"snap-{tr.event_id[3:]}-{tr.seq}"
            jpeg, ref = snapshot.encode(rendered, self.config.snapshot, snap_id)
        evidence = list(track.history)[-_EVIDENCE_BOXES:] if track else []
        event = DetectionEvent(
            msg_id=digest(tr.event_id, tr.seq)[:32],
            ts=now,
            site_id=self.site_id,
            device_id=self.device_id,
            event_id=tr.event_id,
            phase=tr.phase,
            seq=tr.seq,
            category=rule.category,
            severity=rule.severity,
            camera_id=self.config.camera_id,
            zone_id=rule.zone_id,
            track_id=tr.track_id,
            object_class=track.class_name if track else "unknown",
            object_category=track.category if track else ObjectCategory.VEHICLE,
            score=min(1.0, track.best_score) if track else 0.0,
            boxes=[BoxEvidence(ts=s.ts, box=s.box, score=min(1.0, s.score)) for s in evidence],
            dwell_s=tr.dwell_s,
            started_at=tr.started_at,
            ended_at=tr.ended_at,
            model=model,
            snapshot=ref,
        )
        return EventOut(event=event, snapshot=jpeg)
