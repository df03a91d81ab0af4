"""The named scenarios (a car parks, a motorcycle rides the lift, ...) and their cameras.

Used by the edge tests, the edge benchmarks and the demo. Importing this module has no side
effects and needs neither OpenCV nor numpy. A scenario is a `guanjia.scene_clips.Scenario`
drawn from the shared photos of `guanjia.scene_photos`.

No bag in these photos is detected by yolox_nano on its own (the handbag crop of 000000183709
comes out as a "traffic light"; its best handbag score is below 0.001), so the litter scenario
uses a dumped bicycle and a litter zone watching two-wheelers as well.

Each scenario names the camera it is filmed by (`Scenario.camera`); `camera_config(scenario)`
gives that camera's config as a dict ready for `edge.camera_config.parse_camera_config` or a
YAML file, with short dwell times (minutes of real life become seconds of clip).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from guanjia.scene_clips import FPS, Camera, Path2D, Scenario

# --- the scenarios of issue 3 ------------------------------------------------------------------

# The car crop is 149x113; the no-parking zone covers the kerb at bottom left.
PARK_SPOT = (110.0, 300.0)


def car_parks(*, park_s: float = 12.0, tail_s: float = 4.0) -> Scenario:
    """A car drives in from the left, parks in the no-parking zone, then drives off to the left."""
    x, y = PARK_SPOT
    arrive, leave = 2.0, 2.0 + park_s
    keys = [(0.0, -150.0, y), (arrive, x, y), (leave, x, y), (leave + 2.0, -150.0, y)]
    return Scenario("car_parks", leave + 2.0 + tail_s, [Path2D("car", keys)], camera="lane")


def car_parks_occluded(*, park_s: float = 12.0, tail_s: float = 3.0) -> Scenario:
    """As `car_parks`, and a pedestrian walks across in front of the parked car during its dwell.

    The person (drawn over the car) covers part of it from about 3.9 s to 6.2 s of the clip,
    while the car's dwell timer runs (it stopped at 2 s).
    """
    parked = car_parks(park_s=park_s, tail_s=tail_s)
    walker = Path2D("person", [(3.0, -100.0, 250.0), (7.0, 330.0, 250.0)])
    return Scenario("car_parks_occluded", parked.duration_s, [*parked.paths, walker], camera="lane")


def car_towed(*, park_s: float = 10.0, tail_s: float = 10.0) -> Scenario:
    """A car drives in and parks as in `car_parks`, then vanishes at once (towed away, or a cut).

    Nothing is in front of its place afterwards: the place shows the kerb it covered before.
    """
    x, y = PARK_SPOT
    gone = 2.0 + park_s
    keys = [(0.0, -150.0, y), (2.0, x, y), (gone, x, y)]
    return Scenario("car_towed", gone + tail_s, [Path2D("car", keys)], camera="lane")


VAN_STANDS = (8.0, 16.0)
"""When the van of `car_behind_van` stands in front of the parked car (clip seconds)."""


def car_behind_van(*, towed_at: float = 20.0, tail_s: float = 8.0) -> Scenario:
    """A car parks; a van pulls up in front of it and hides it for 8 s, leaves; later the car is
    towed (vanishes) with nothing in front.

    The van (260x170) covers the whole car crop (157x121 at `PARK_SPOT`) while it stands.
    """
    x, y = PARK_SPOT
    car = Path2D("car", [(0.0, -150.0, y), (2.0, x, y), (towed_at, x, y)])
    a, b = VAN_STANDS
    vy = y - 40.0
    van = Path2D(
        "van", [(a - 1.5, 640.0, vy), (a, x - 50.0, vy), (b, x - 50.0, vy), (b + 1.5, 640.0, vy)]
    )
    return Scenario("car_behind_van", towed_at + tail_s, [car, van], camera="lane")


def car_cut_off_by_frame(*, park_s: float = 10.0) -> Scenario:
    """A car parks so low in the picture that the frame's bottom edge cuts off its wheels."""
    x, y = PARK_SPOT[0], 400.0  # the crop is 121 px tall: its last 41 rows are out of frame
    keys = [(0.0, -150.0, y), (2.0, x, y), (2.0 + park_s, x, y)]
    return Scenario("car_cut_off_by_frame", 2.0 + park_s, [Path2D("car", keys)], camera="lane")


def car_drives_through() -> Scenario:
    """A car crosses the fire lane from left to right at a steady pace, never stopping."""
    keys = [(0.0, -150.0, 300.0), (6.0, 640.0, 300.0)]
    return Scenario("car_drives_through", 8.0, [Path2D("car", keys)], camera="lane")


def moto_enters_cabin() -> Scenario:
    """The motorcycle (with rider) rolls into the cabin from the right and stays."""
    keys = [(0.0, 640.0, 180.0), (1.0, 200.0, 180.0), (8.0, 200.0, 180.0)]
    return Scenario("moto_enters_cabin", 8.0, [Path2D("moto", keys)], camera="cabin")


def moto_rides_lift(*, ride_s: float = 6.0, tail_s: float = 4.0) -> Scenario:
    """The motorcycle rolls into the cabin, rides `ride_s` seconds, then rolls out in 1 s."""
    out = 1.0 + ride_s
    keys = [
        (0.0, 640.0, 180.0),
        (1.0, 200.0, 180.0),
        (out, 200.0, 180.0),
        (out + 1.0, 640.0, 180.0),
    ]
    return Scenario("moto_rides_lift", out + 1.0 + tail_s, [Path2D("moto", keys)], camera="cabin")


def person_enters_cabin() -> Scenario:
    """A person walks into the cabin and stands there."""
    keys = [(0.0, 640.0, 250.0), (1.0, 260.0, 250.0), (8.0, 260.0, 250.0)]
    return Scenario("person_enters_cabin", 8.0, [Path2D("person", keys)], camera="cabin")


def bicycle_dumped() -> Scenario:
    """After a quiet start a bicycle is pushed into the garbage point and left there."""
    keys = [(3.0, 640.0, 300.0), (4.0, 150.0, 300.0), (14.0, 150.0, 300.0)]
    return Scenario("bicycle_dumped", 14.0, [Path2D("bicycle", keys)], camera="garbage")


def lighting_change() -> Scenario:
    """Nothing moves; the lights go up by 40% at 2 s and down again at 6 s."""
    return Scenario("lighting_change", 10.0, [], gain=[(2.0, 1.4), (6.0, 1.0)], camera="lane")


SCENARIOS: dict[str, Callable[[], Scenario]] = {
    "car_parks": car_parks,
    "car_parks_occluded": car_parks_occluded,
    "car_towed": car_towed,
    "car_behind_van": car_behind_van,
    "car_cut_off_by_frame": car_cut_off_by_frame,
    "car_drives_through": car_drives_through,
    "moto_enters_cabin": moto_enters_cabin,
    "moto_rides_lift": moto_rides_lift,
    "person_enters_cabin": person_enters_cabin,
    "bicycle_dumped": bicycle_dumped,
    "lighting_change": lighting_change,
}
"""Every named scenario with its default parameters, by name."""


# --- camera configs for them (short dwell times: minutes of real life become seconds) ----------

LANE_ZONES: list[dict[str, Any]] = [
    {
        "id": "no-parking-a",
        "rule": "illegal_parking",
        "polygon": [[0.0, 0.75], [0.5, 0.75], [0.5, 1.0], [0.0, 1.0]],
        "dwell_s": 4.0,
        "update_interval_s": 2.0,
    },
    {
        "id": "fire-lane-1",
        "rule": "fire_lane_blocked",
        "polygon": [[0.5, 0.75], [0.75, 0.75], [0.75, 1.0], [0.5, 1.0]],
        "dwell_s": 3.0,
    },
]


def lane_config(**extra: Any) -> dict[str, Any]:
    """The village-lane camera: no-parking zone and fire lane at the bottom of the frame."""
    return {
        "camera_id": "cam-lane",
        "source": "unused",
        "fps": FPS,
        "tracker": {"stationary_s": 1.0, "max_lost_stationary_s": 10.0},
        "zones": LANE_ZONES,
        **extra,
    }


def cabin_config(**extra: Any) -> dict[str, Any]:
    """The elevator camera: the cabin floor is most of the frame."""
    return {
        "camera_id": "cam-lift",
        "source": "unused",
        "fps": FPS,
        "zones": [
            {
                "id": "cabin",
                "rule": "ebike_in_elevator",
                "polygon": [[0.1, 0.5], [0.9, 0.5], [0.9, 1.0], [0.1, 1.0]],
                "dwell_s": 2.0,
            }
        ],
        **extra,
    }


def garbage_config(**extra: Any) -> dict[str, Any]:
    """The garbage-point camera: litter zone at the bottom, watching two-wheelers too."""
    return {
        "camera_id": "cam-bins",
        "source": "unused",
        "fps": FPS,
        "tracker": {"stationary_s": 1.0},
        "zones": [
            {
                "id": "litter-watch",
                "rule": "litter",
                "polygon": [[0.05, 0.6], [0.95, 0.6], [0.95, 1.0], [0.05, 1.0]],
                "dwell_s": 4.0,
                "reference_s": 2.0,
                "update_interval_s": 2.0,
                "categories": ["litter_candidate", "two_wheeler"],
            }
        ],
        **extra,
    }


CAMERA_CONFIGS: dict[Camera, Callable[..., dict[str, Any]]] = {
    "lane": lane_config,
    "cabin": cabin_config,
    "garbage": garbage_config,
}


def camera_config(scenario: Scenario, **extra: Any) -> dict[str, Any]:
    """The camera config (a plain dict) that goes with `scenario`; `extra` overrides keys.

    For example ``camera_config(sc, source=str(write_clip(sc, tmp / "clip.avi")))``.
    """
    if scenario.camera is None:
        raise ValueError(f"scenario {scenario.name!r} names no camera")
    return CAMERA_CONFIGS[scenario.camera](**extra)
