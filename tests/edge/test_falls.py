"""Objects thrown from height (高空抛物): physics of the fit, the facade calibration, and the
facade pipeline on generated clips of a facade built from a real photo."""

from __future__ import annotations

import math
from typing import Any

import pytest

from contract import EventCategory, EventPhase, Severity
from edge.camera_config import CameraConfigError, ThrownObjectZone, parse_camera_config
from edge.events import EventOut
from edge.facade_pipeline import FacadePipeline
from edge.falls import Blob, FallTrack, FallTracker, judge
from edge.imaging import decode_image
from guanjia import facade_scenes as F  # noqa: N812 - short name for many clip calls

T0 = 1_800_000_000.0


def _zone(**extra: Any) -> ThrownObjectZone:
    config = parse_camera_config(F.facade_config())
    zone = config.zones[0]
    assert isinstance(zone, ThrownObjectZone)
    return zone.model_copy(update=extra)


def _track(path: Any, n: int = 20, fps: float = 20.0, area: float = 0.0003) -> FallTrack:
    track = FallTrack(1)
    for i in range(n):
        t = i / fps
        x, y = path(t)
        track.points.append((t, x / F.W, y / F.H))
        track.areas.append(area)
    return track


def _free_fall(floor: int, up: float = 0.0) -> Any:
    drop = F.Drop(0.0, floor, 2, up_mps=up)

    def path(t: float) -> tuple[float, float]:
        pos = drop.at_time(t)
        assert pos is not None
        return pos

    return path, int(drop.landing_t() * 20)


@pytest.mark.parametrize("floor", [2, 3, 4, 5, 6])
def test_free_fall_is_judged_with_its_floor(floor: int) -> None:
    path, n = _free_fall(floor)
    verdict = judge(_track(path, n), _zone())
    assert verdict is not None
    assert verdict.floor == floor
    assert verdict.column == "C"
    assert abs(verdict.g_ratio - 1.0) < 0.3


@pytest.mark.parametrize(
    ("name", "path", "n", "area"),
    [
        pytest.param("rain", lambda t: (300, 50 + 260 * t), 20, 0.0003, id="constant-speed"),
        pytest.param(
            "leaf",
            lambda t: (300 + 15 * math.sin(7 * t), 100 + 32 * t),
            60,
            0.0003,
            id="leaf-flutters-slowly",
        ),
        pytest.param(
            "up", lambda t: (300, 400 - 100 * t - 0.5 * 300 * t * t), 20, 0.0003, id="rising"
        ),
        pytest.param(
            "weak", lambda t: (300, 100 + 0.5 * 60 * t * t), 30, 0.0003, id="a-fifth-of-gravity"
        ),
        pytest.param(
            "bird",
            lambda t: (50 + 190 * t, 160 + 45 * math.sin(5.6 * t)),
            40,
            0.0003,
            id="bird-dips-and-climbs",
        ),
        pytest.param(
            "big", lambda t: (300, 100 + 0.5 * 300 * t * t), 20, 0.01, id="too-large-a-blob"
        ),
        pytest.param(
            "short", lambda t: (300, 100 + 0.5 * 300 * t * t), 4, 0.0003, id="too-few-points"
        ),
    ],
)
def test_what_is_not_a_fall(name: str, path: Any, n: int, area: float) -> None:
    assert judge(_track(path, n, area=area), _zone()) is None, name


def test_tracker_links_a_fall_through_clutter_and_ends_it_after_the_gap() -> None:
    path, n = _free_fall(5)
    tracker = FallTracker(max_gap_s=0.25)
    ended: list[FallTrack] = []
    for i in range(n):
        x, y = path(i / 20)
        clutter = [Blob(0.1 + 0.03 * (i % 7), 0.2 + 0.01 * i, 0.0002)]  # drifting, elsewhere
        ended += tracker.update([Blob(x / F.W, y / F.H, 0.0003), *clutter], i / 20)
    for i in range(n, n + 6):
        ended += tracker.update([], i / 20)
    falls = [t for t in ended if judge(t, _zone()) is not None]
    assert len(falls) == 1
    assert len(falls[0].points) == n


def test_facade_calibration_maps_heights_to_floors_and_columns() -> None:
    facade = _zone().facade
    for floor in range(1, 7):
        y = F.y_of_height((floor - 1) * 3.0 + 1.5) / F.H  # mid-storey
        assert facade.floor_at(y) == floor
    assert facade.column_at(0.05) == "A"
    assert facade.column_at(0.95) == "E"


@pytest.mark.parametrize(
    ("facade", "problem"),
    [
        (
            {"floors": [{"floor": 1, "y": 0.9}, {"floor": 3, "y": 0.7}], "roof_y": 0.5},
            "consecutive",
        ),
        ({"floors": [{"floor": 1, "y": 0.5}, {"floor": 2, "y": 0.7}], "roof_y": 0.2}, "rise"),
    ],
)
def test_bad_facade_calibration_names_the_field(facade: dict[str, Any], problem: str) -> None:
    config = F.facade_config()
    config["zones"][0]["facade"] = facade
    with pytest.raises(CameraConfigError, match=problem) as err:
        parse_camera_config(config)
    assert err.value.field == "zones[0].facade"


def test_thrown_object_zone_needs_a_camera_of_its_own() -> None:
    config = F.facade_config()
    config["zones"].append(
        {"id": "lane", "rule": "illegal_parking", "polygon": [[0, 0], [1, 0], [1, 1]]}
    )
    with pytest.raises(CameraConfigError, match="camera of its own"):
        parse_camera_config(config)


def _run(clip: F.FacadeClip) -> list[tuple[float, EventOut]]:
    pipeline = FacadePipeline(
        parse_camera_config(F.facade_config()), site_id="xinan", device_id="edge-09"
    )
    out: list[tuple[float, EventOut]] = []
    for t, frame in clip.frames():
        out += [(t, o) for o in pipeline.process(frame, T0 + t)]
    return out


def _check_drops(clip: F.FacadeClip) -> None:
    out = _run(clip)
    starts = [(t, o) for t, o in out if o.event.phase is EventPhase.START]
    assert len(starts) == len(clip.drops), [(t, o.event.object_class) for t, o in starts]
    for drop, (t, start) in zip(clip.drops, starts, strict=True):
        ev = start.event
        assert ev.category is EventCategory.THROWN_OBJECT
        assert ev.severity is Severity.URGENT
        assert drop.lands_at <= t <= drop.lands_at + 1.0  # within 1 s of the landing
        floor = int(ev.object_class.split("floor ")[1].split(",")[0])
        assert abs(floor - drop.floor) <= 1, (ev.object_class, drop)
        assert f"column {F.COLUMNS[drop.column]}" in ev.object_class
        assert start.snapshot is not None
        image = decode_image(start.snapshot)
        assert image.shape[0] > image.shape[1] * 0.75  # the frame plus the strip below it
    ends = [o.event for _, o in out if o.event.phase is EventPhase.END]
    assert [e.event_id for e in ends] == [o.event.event_id for _, o in starts]


def test_three_drops_fire_within_a_second_of_landing_with_the_floor() -> None:
    clip = F.drops()
    _check_drops(F.FacadeClip("three", 9.0, drops=clip.drops[:3]))


@pytest.mark.slow
def test_every_drop_fires_within_a_second_of_landing_with_the_floor() -> None:
    _check_drops(F.drops())


@pytest.mark.parametrize(
    "name",
    [
        "rain",
        "bird",
        pytest.param("leaves", marks=pytest.mark.slow),
        pytest.param("person", marks=pytest.mark.slow),
        pytest.param("lift", marks=pytest.mark.slow),
        pytest.param("lighting", marks=pytest.mark.slow),
    ],
)
def test_distractor_never_fires(name: str) -> None:
    assert _run(F.distractors()[name]) == []
