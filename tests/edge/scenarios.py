"""Scenario clips built from the shared real photos: real object crops pasted on a real street.

Every clip is 640x480 at 5 fps, with a little sensor noise per frame (seeded), and is produced
lazily (`Scenario.frame(i)`), so a test holds one frame at a time. Object paths are keyframed:
the crop moves linearly between keyframes and is clipped at the frame border.

Crops (from /work/shared/testdata/images, see SOURCE.txt there):
- ``car``: the saloon in 000000423617 (yolox_nano: car 0.81 when pasted here),
- ``moto``: the motorcycle and rider of 000000165518 with its foggy surroundings (the model
  needs that context to see the motorcycle at all),
- ``bicycle``: the bicycle (with the dog) of dog.jpg,
- ``person``: a pedestrian of 000000183709.

No bag in these photos is detected by yolox_nano on its own (the handbag crop of 000000183709
comes out as a "traffic light"; its best handbag score is below 0.001), so the litter scenario
uses a dumped bicycle and a litter zone watching two-wheelers as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

IMAGES = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "images"
W, H, FPS = 640, 480, 5.0

Image = npt.NDArray[np.uint8]

_CROPS: dict[str, tuple[str, tuple[int, int, int, int], int, float]] = {
    # name: (file, box x1 y1 x2 y2, margin px, scale)
    "car": ("000000423617.jpg", (127, 295, 268, 400), 4, 1.0),
    "moto": ("000000165518.jpg", (253, 260, 427, 512), 60, 0.8),
    "bicycle": ("dog.jpg", (52, 137, 572, 424), 4, 0.6),
    "person": ("000000183709.jpg", (304, 192, 482, 637), 4, 0.5),
}


@cache
def background() -> Image:
    """The street of 000000231460 at 640x480 (a parked car at its right stays in every frame)."""
    image = cv2.imread(str(IMAGES / "000000231460.jpg"))
    assert image is not None
    return np.ascontiguousarray(cv2.resize(image, (W, H), interpolation=cv2.INTER_AREA))


@cache
def crop(name: str) -> Image:
    """One object crop, scaled for the scene."""
    file, (x1, y1, x2, y2), m, scale = _CROPS[name]
    image = cv2.imread(str(IMAGES / file))
    assert image is not None
    piece = image[max(0, y1 - m) : y2 + m, max(0, x1 - m) : x2 + m]
    return np.ascontiguousarray(cv2.resize(piece, None, fx=scale, fy=scale))


@dataclass(frozen=True)
class Path2D:
    """Keyframes (t seconds, x, y) of a crop's top-left corner; absent outside [first, last]."""

    obj: str
    keys: list[tuple[float, float, float]]

    def at(self, t: float) -> tuple[int, int] | None:
        if t < self.keys[0][0] or t > self.keys[-1][0]:
            return None
        for (t0, x0, y0), (t1, x1, y1) in zip(self.keys, self.keys[1:], strict=False):
            if t0 <= t <= t1:
                a = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
                return round(x0 + a * (x1 - x0)), round(y0 + a * (y1 - y0))
        _, x, y = self.keys[-1]
        return round(x), round(y)


def paste(frame: Image, piece: Image, x: int, y: int) -> None:
    """Paste `piece` with its top-left at (x, y), clipped to the frame, in place."""
    h, w = piece.shape[:2]
    fx1, fy1, fx2, fy2 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if fx2 <= fx1 or fy2 <= fy1:
        return
    frame[fy1:fy2, fx1:fx2] = piece[fy1 - y : fy2 - y, fx1 - x : fx2 - x]


@dataclass(frozen=True)
class Scenario:
    """A clip: duration, moving objects, optional lighting gain steps, noise seed."""

    name: str
    duration_s: float
    paths: list[Path2D]
    gain: list[tuple[float, float]] = field(default_factory=list)  # (from t, brightness gain)
    seed: int = 7
    fps: float = FPS

    @property
    def n_frames(self) -> int:
        return int(self.duration_s * self.fps)

    def frame(self, i: int) -> Image:
        t = i / self.fps
        frame = background().copy()
        for path in self.paths:
            pos = path.at(t)
            if pos is not None:
                paste(frame, crop(path.obj), *pos)
        gain = 1.0
        for start, g in self.gain:
            if t >= start:
                gain = g
        rng = np.random.default_rng(self.seed * 100_003 + i)
        noisy = frame.astype(np.int16) * gain + rng.normal(0, 2.0, frame.shape)
        return np.clip(noisy, 0, 255).astype(np.uint8)

    def frames(self) -> Iterator[tuple[float, Image]]:
        for i in range(self.n_frames):
            yield i / self.fps, self.frame(i)

    def write_folder(self, folder: Path) -> Path:
        """Write the clip as numbered JPEGs (quality 92) for `guanjia edge replay`."""
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(self.n_frames):
            cv2.imwrite(str(folder / f"{i:05d}.jpg"), self.frame(i), [cv2.IMWRITE_JPEG_QUALITY, 92])
        return folder


# --- the scenarios of issue 3 ------------------------------------------------------------------

# The car crop is 149x113; the no-parking zone covers the kerb at bottom left.
PARK_SPOT = (110.0, 300.0)


def car_parks(*, park_s: float = 12.0, tail_s: float = 4.0) -> Scenario:
    """A car drives in from the left, parks in the no-parking zone, then drives off to the left."""
    x, y = PARK_SPOT
    arrive, leave = 2.0, 2.0 + park_s
    keys = [(0.0, -150.0, y), (arrive, x, y), (leave, x, y), (leave + 2.0, -150.0, y)]
    return Scenario("car_parks", leave + 2.0 + tail_s, [Path2D("car", keys)])


def car_drives_through() -> Scenario:
    """A car crosses the fire lane from left to right at a steady pace, never stopping."""
    keys = [(0.0, -150.0, 300.0), (6.0, 640.0, 300.0)]
    return Scenario("car_drives_through", 8.0, [Path2D("car", keys)])


def moto_enters_cabin() -> Scenario:
    """The motorcycle (with rider) rolls into the cabin from the right and stays."""
    keys = [(0.0, 640.0, 180.0), (1.0, 200.0, 180.0), (8.0, 200.0, 180.0)]
    return Scenario("moto_enters_cabin", 8.0, [Path2D("moto", keys)])


def person_enters_cabin() -> Scenario:
    """A person walks into the cabin and stands there."""
    keys = [(0.0, 640.0, 250.0), (1.0, 260.0, 250.0), (8.0, 260.0, 250.0)]
    return Scenario("person_enters_cabin", 8.0, [Path2D("person", keys)])


def bicycle_dumped() -> Scenario:
    """After a quiet start a bicycle is pushed into the garbage point and left there."""
    keys = [(3.0, 640.0, 300.0), (4.0, 150.0, 300.0), (14.0, 150.0, 300.0)]
    return Scenario("bicycle_dumped", 14.0, [Path2D("bicycle", keys)])


def lighting_change() -> Scenario:
    """Nothing moves; the lights go up by 40% at 2 s and down again at 6 s."""
    return Scenario("lighting_change", 10.0, [], gain=[(2.0, 1.4), (6.0, 1.0)])


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
                "min_consecutive": 10,
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
