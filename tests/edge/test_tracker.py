"""The tracker, table-driven: detections built by hand, `now` injected, no model, no images.

Each case feeds a sequence of detector runs (time, detections) into a fresh `Tracker` with the
default `TrackerConfig` (match IoU 0.25, 2 hits to confirm, moving tracks lost after 4 s,
stationary ones after 60 s, still = IoU >= 0.6 with the anchor for 2 s, 3 displaced boxes to
move again) and compares the surviving tracks.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from contract import ObjectCategory
from edge.boxes import RelBox
from edge.camera_config import TrackerConfig
from edge.tracker import Tracker, TrackInput

V, P, B = ObjectCategory.VEHICLE, ObjectCategory.PERSON, ObjectCategory.TWO_WHEELER
CAR: RelBox = (0.10, 0.50, 0.30, 0.80)


def shift(box: RelBox, dx: float, dy: float = 0.0) -> RelBox:
    return (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)


def det(box: RelBox, category: ObjectCategory = V, score: float = 0.8) -> TrackInput:
    name = {V: "car", P: "person", B: "motorcycle"}.get(category, "bottle")
    return TrackInput(box=box, score=score, class_name=name, category=category)


Run = tuple[float, list[TrackInput]]


def every(start: float, stop: float, *dets: TrackInput, step: float = 0.2) -> list[Run]:
    """The same detections on every run from `start` to `stop` inclusive (5 fps)."""
    n = round((stop - start) / step)
    return [(round(start + i * step, 3), list(dets)) for i in range(n + 1)]


def moving(start: float, stop: float, box: RelBox, dx_per_run: float) -> list[Run]:
    n = round((stop - start) / 0.2)
    return [(round(start + i * 0.2, 3), [det(shift(box, i * dx_per_run))]) for i in range(n + 1)]


@dataclass(frozen=True)
class Expect:
    """What one surviving track looks like (None: not checked)."""

    track_id: int
    category: ObjectCategory = V
    confirmed: bool = True
    stationary: bool = False
    stationary_since: float | None = None
    missed_runs: int = 0
    box: RelBox | None = None


PARKED = every(0.0, 3.0, det(CAR))  # stands still for 3 s: stationary since 0
OCCLUDED_VIEW = (0.10, 0.50, 0.19, 0.80)  # the left half: a passer-by hides the right half

CASES = [
    pytest.param(moving(0.0, 1.0, CAR, 0.03), [Expect(1)], id="follows-a-moving-car"),
    pytest.param(
        [(0.0, [det(CAR)]), (0.2, [det(shift(CAR, 0.5))])],
        [Expect(2, confirmed=False)],
        id="a-jump-is-a-new-object-and-the-tentative-one-dies-on-its-first-miss",
    ),
    pytest.param(
        every(0.0, 1.0, det(CAR), det(CAR, P)),
        [Expect(1), Expect(2, category=P)],
        id="categories-never-share-a-track",
    ),
    pytest.param(
        every(0.0, 1.0, det(CAR), det(shift(CAR, 0.4))),
        [Expect(1), Expect(2)],
        id="two-cars-two-tracks",
    ),
    pytest.param(PARKED, [Expect(1, stationary=True, stationary_since=0.0)], id="stationary"),
    pytest.param(
        every(0.0, 1.8, det(CAR)), [Expect(1, stationary=False)], id="not-stationary-before-2s"
    ),
    pytest.param(
        [(i * 0.2, [det(shift(CAR, 0.004 * (-1) ** i))]) for i in range(16)],
        [Expect(1, stationary=True, stationary_since=0.0)],
        id="box-jitter-is-still-stationary",
    ),
    pytest.param(
        [*PARKED, (10.0, []), (30.0, []), (50.0, [])],
        [Expect(1, stationary=True, stationary_since=0.0, missed_runs=3)],
        id="stationary-survives-50s-of-misses",
    ),
    pytest.param(
        [*PARKED, (10.0, []), (30.0, []), (50.0, []), (60.0, [det(CAR)])],
        [Expect(1, stationary=True, stationary_since=0.0, missed_runs=0)],
        id="refound-after-misses-keeps-its-id-and-dwell",
    ),
    pytest.param([*PARKED, (63.1, [])], [], id="stationary-dropped-after-max-lost-stationary-s"),
    pytest.param(
        [*moving(0.0, 1.0, CAR, 0.03), (4.9, [])],
        [Expect(1, missed_runs=1)],
        id="moving-kept-within-max-lost-s",
    ),
    pytest.param(
        [*moving(0.0, 1.0, CAR, 0.03), (5.1, [])],
        [],
        id="moving-dropped-by-time-not-by-run-count",
    ),
    pytest.param(
        [*PARKED, *every(3.2, 5.0, det(OCCLUDED_VIEW))],
        [Expect(1, stationary=True, stationary_since=0.0, box=CAR)],
        id="occluded-views-keep-anchor-and-dwell",
    ),
    pytest.param(
        # IoU 0.54 with the anchor: the same car (>= 0.25) but displaced (< 0.6).
        [*PARKED, (3.2, [det(shift(CAR, 0.06))]), (3.4, [det(shift(CAR, 0.06))])],
        [Expect(1, stationary=True, stationary_since=0.0, box=CAR)],
        id="two-displaced-boxes-do-not-move-a-parked-car",
    ),
    pytest.param(
        [*PARKED, *[(3.2 + 0.2 * i, [det(shift(CAR, 0.1 * (i + 1)))]) for i in range(3)]],
        [Expect(1, stationary=False, box=shift(CAR, 0.3))],
        id="three-displaced-boxes-and-it-drives-off",
    ),
]


@pytest.mark.parametrize(("runs", "expected"), CASES)
def test_tracker(runs: list[Run], expected: list[Expect]) -> None:
    tracker = Tracker(TrackerConfig())
    for now, detections in runs:
        tracker.update(detections, now)
    got = tracker.tracks
    assert [t.track_id for t in got] == [e.track_id for e in expected]
    for track, exp in zip(got, expected, strict=True):
        assert track.category is exp.category
        assert track.confirmed is exp.confirmed
        assert track.stationary is exp.stationary
        assert track.stationary_since == exp.stationary_since
        assert track.missed_runs == exp.missed_runs
        if exp.box is not None:
            assert track.box == pytest.approx(exp.box)


def test_update_reports_the_dropped_tracks() -> None:
    tracker = Tracker(TrackerConfig())
    for now, dets in PARKED:
        tracker.update(dets, now)
    assert tracker.update([], 30.0) == []
    dropped = tracker.update([], 63.1)  # last seen at 3.0 s, 60 s allowed
    assert [t.track_id for t in dropped] == [1]
    assert tracker.tracks == []


def test_history_keeps_the_evidence_of_each_sighting() -> None:
    tracker = Tracker(TrackerConfig())
    for now, dets in moving(0.0, 0.6, CAR, 0.02):
        tracker.update(dets, now)
    (track,) = tracker.tracks
    assert [s.ts for s in track.history] == [0.0, 0.2, 0.4, 0.6]
    assert track.history[-1].box == pytest.approx(shift(CAR, 0.06))
