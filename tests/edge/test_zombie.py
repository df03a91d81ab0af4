"""Zombie cars (僵尸车): days compressed in simulated time, with nights, rain, traffic and a
restart of the node in the middle; and the stationary memory that makes it work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from contract import EventCategory, EventPhase, ObjectCategory, Severity
from edge.actions import LoggingActionSink
from edge.camera_config import parse_camera_config
from edge.detector import OnnxDetector
from edge.events import EventOut
from edge.imaging import decode_image
from edge.pipeline import CameraPipeline
from edge.stationary_memory import MemoryFileError, Remembered, StationaryMemory
from guanjia import scene_photos
from guanjia import zombie_scenes as Z  # noqa: N812 - the story's names

DAY = Z.DAY


def _centre_x(out: EventOut) -> float:
    x1, _, x2, _ = out.event.boxes[-1].box
    return (x1 + x2) / 2 * scene_photos.W


def test_zombie_car_one_event_after_seven_days_across_a_restart(
    detector: OnnxDetector, tmp_path: Path
) -> None:
    config = parse_camera_config(Z.zombie_config())
    memory_file = tmp_path / "stationary-cam-carpark.json"

    def pipeline() -> CameraPipeline:
        memory = StationaryMemory.load(memory_file, config.tracker.remember_stationary_s)
        return CameraPipeline(
            config, detector, LoggingActionSink(), site_id="x", device_id="e", memory=memory
        )

    node = pipeline()
    out: list[EventOut] = []
    restarted = False
    for shot in Z.zombie_story():
        if not restarted and shot.t >= Z.RESTART_AT:
            node.memory.save(memory_file)  # what the node app does when the memory changes
            node = pipeline()  # a new process: fresh tracker, gate and track ids
            restarted = True
        out.extend(node.process(shot.frame(), Z.ZOMBIE_T0 + shot.t))
    assert restarted
    assert json.loads(memory_file.read_text())["objects"], "the memory was on disk"
    starts = [o for o in out if o.event.phase is EventPhase.START]
    assert [(o.event.category, o.event.zone_id) for o in starts] == [
        (EventCategory.ZOMBIE_VEHICLE, "carpark")
    ], [(o.event.category, _centre_x(o), o.event.ts - Z.ZOMBIE_T0) for o in starts]
    (start,) = starts
    ev = start.event
    assert ev.severity is Severity.LOW
    # Car A (the zombie), not car B that left after 6 days, nor the passing car C.
    assert abs(_centre_x(start) - (Z.ZOMBIE_SPOT[0] + 78)) < 30
    # Its clock runs from when it stopped on day 0 (2 s in), through nights, rain and the
    # restart on day 3, and it fires at the first detector run after 7 days.
    assert abs(ev.started_at - (Z.ZOMBIE_T0 + 2.0)) <= 1.0
    assert 7 * DAY <= ev.ts - ev.started_at <= 7 * DAY + 3.5 * Z.HOUR
    assert ev.dwell_s >= 7 * DAY
    # The evidence shows the first day beside now: the photo kept when it stopped.
    assert start.snapshot is not None
    image = decode_image(start.snapshot)
    assert image.shape[1] > 1.5 * image.shape[0]
    assert not [o for o in out if o.event.category is not EventCategory.ZOMBIE_VEHICLE]


LOOK = np.linspace(-1.5, 1.5, 16 * 12, dtype=np.float32).reshape(12, 16)
BOX = (0.2, 0.6, 0.4, 0.85)


def _car(since: float = 100.0, box: tuple[float, float, float, float] = BOX) -> Remembered:
    return Remembered(ObjectCategory.VEHICLE, "car", box, since, since, LOOK, b"\xff\xd8jpeg")


@pytest.mark.parametrize(
    ("category", "box", "look", "found"),
    [
        pytest.param(ObjectCategory.VEHICLE, BOX, LOOK, True, id="same-place-same-look"),
        pytest.param(ObjectCategory.VEHICLE, BOX, LOOK * 0.3, True, id="darker-is-same-look"),
        pytest.param(
            ObjectCategory.VEHICLE, (0.21, 0.61, 0.41, 0.86), LOOK, True, id="jittered-box"
        ),
        pytest.param(ObjectCategory.VEHICLE, BOX, -LOOK, False, id="another-car-there"),
        pytest.param(
            ObjectCategory.VEHICLE, (0.5, 0.6, 0.7, 0.85), LOOK, False, id="another-place"
        ),
        pytest.param(ObjectCategory.TWO_WHEELER, BOX, LOOK, False, id="another-category"),
    ],
)
def test_memory_recalls_by_place_and_look(
    category: ObjectCategory,
    box: tuple[float, float, float, float],
    look: np.ndarray,
    found: bool,
) -> None:
    memory = StationaryMemory(remember_s=DAY)
    memory.add(1, _car())
    memory.unlink(1)  # the track was lost; the car may still be there
    got = memory.recall(category, box, (look / max(float(look.std()), 1e-6)).astype(np.float32))
    assert (got is not None) is found
    if got is not None:
        assert got.since == 100.0


def test_memory_forgets_what_left_and_what_was_not_seen_for_long() -> None:
    memory = StationaryMemory(remember_s=DAY)
    memory.add(1, _car())
    memory.add(2, _car(box=(0.6, 0.6, 0.8, 0.85)))
    assert memory.recall(ObjectCategory.VEHICLE, BOX, LOOK) is None  # linked to a live track
    memory.forget(1)  # drove off
    assert len(memory.objects) == 1
    memory.unlink(2)
    memory.expire(100.0 + DAY)
    assert len(memory.objects) == 1
    memory.expire(100.0 + DAY + 1)
    assert memory.objects == []


def test_memory_survives_a_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    assert StationaryMemory.load(path, DAY).objects == []  # no file yet: empty
    memory = StationaryMemory(remember_s=DAY)
    memory.add(7, _car())
    dirty_before = memory.dirty
    memory.save(path)
    assert (dirty_before, memory.dirty) == (True, False)
    loaded = StationaryMemory.load(path, DAY)
    (car,) = loaded.objects
    assert (car.box, car.since, car.photo) == (BOX, 100.0, b"\xff\xd8jpeg")
    assert np.allclose(car.look, LOOK, atol=1e-3)
    assert loaded.linked(7) is None  # tracks do not survive a restart; objects do
    path.write_text("{not json")
    with pytest.raises(MemoryFileError, match=r"m\.json: not a stationary memory file"):
        StationaryMemory.load(path, DAY)
