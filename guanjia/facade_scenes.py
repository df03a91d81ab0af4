"""Facade clips for the thrown-object rule (高空抛物): drops along ballistic paths, distractors.

The facade is built from a real photo: one storey of the yellow building in the shared
000000183709.jpg (a window and the wall around it, CC BY 2.0, see SOURCE.txt there) is tiled
five columns wide and six storeys high, each storey 10 % shorter than the one below it, as a
camera at the foot of the building looking up sees it. Below it a strip of the photo's street;
above it the sky. Because the facade is built, its calibration (`FACADE`: floor lines, columns) is
exact, and so is the truth of every drop.

Objects move in metres under real gravity: height above the ground line → image row through
the floor lines (perspective included), sideways in pixels. 640x480 at 20 fps, seeded noise.
Importing this module needs neither OpenCV nor numpy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guanjia.scene_clips import exposed, gain_at, paste
from guanjia.scene_photos import W, cached_crop, read_photo, resize, resolve_images_dir

__all__ = [
    "COLUMNS",
    "FACADE",
    "FPS",
    "Drop",
    "FacadeClip",
    "H",
    "W",
    "distractors",
    "drops",
    "facade",
    "facade_config",
    "y_of_height",
]

if TYPE_CHECKING:
    from guanjia.scene_photos import Image

FPS = 20.0
G = 9.81
FLOORS = 6
FLOOR_M = 3.0
COLUMNS = "ABCDE"
_GROUND_Y = 440.0
_FLOOR_PX = 88.0
_SHRINK = 0.9
_PHOTO = "000000183709.jpg"
_STOREY = (0, 75, 400, 475)  # y1, y2, x1, x2 of one storey in the photo (above the hat)


def _lines() -> list[float]:
    """Image rows of the floor lines: the bottom of floors 1..FLOORS, then the roof."""
    ys = [_GROUND_Y]
    for k in range(FLOORS):
        ys.append(ys[-1] - _FLOOR_PX * _SHRINK**k)
    return ys


LINES = _lines()
H = 480

FACADE: dict[str, Any] = {
    "floors": [{"floor": k + 1, "y": round(LINES[k] / H, 4)} for k in range(FLOORS)],
    "roof_y": round(LINES[FLOORS] / H, 4),
    "floor_height_m": FLOOR_M,
    "columns": [
        {"name": name, "x1": i / len(COLUMNS), "x2": (i + 1) / len(COLUMNS)}
        for i, name in enumerate(COLUMNS)
    ],
}
"""The calibration of the built facade, as a camera config's ``facade`` field."""


def facade_config(**extra: Any) -> dict[str, Any]:
    """The facade camera: 20 fps, one thrown_object zone over the whole picture."""
    return {
        "camera_id": "cam-facade",
        "source": "unused",
        "fps": FPS,
        "zones": [
            {
                "id": "block-5-south",
                "rule": "thrown_object",
                "polygon": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
                "facade": FACADE,
            }
        ],
        **extra,
    }


def y_of_height(h_m: float) -> float:
    """Image row of a point `h_m` metres above the ground line, on the facade plane."""
    k = min(max(int(h_m // FLOOR_M), 0), FLOORS - 1)
    a = (h_m - k * FLOOR_M) / FLOOR_M
    return LINES[k] + a * (LINES[k + 1] - LINES[k])


@cache
def _facade(images_dir: Path) -> Image:
    import numpy as np

    photo = read_photo(images_dir / _PHOTO)
    y1, y2, x1, x2 = _STOREY
    storey = photo[y1:y2, x1:x2]
    frame = np.zeros((H, W, 3), dtype=np.uint8)
    sky = np.linspace(235, 205, H, dtype=np.float32)[:, None, None]
    frame[:] = np.clip(sky * np.array([1.0, 0.98, 0.94], dtype=np.float32), 0, 255)
    col_w = W // len(COLUMNS)
    for k in range(FLOORS):
        top, bottom = round(LINES[k + 1]), round(LINES[k])
        tile = resize(storey, (col_w, bottom - top))
        frame[top:bottom] = np.hstack([tile] * len(COLUMNS))
    road = photo[560:600, 150:330]
    frame[round(_GROUND_Y) :] = resize(road, (W, H - round(_GROUND_Y)))
    return frame


def facade(images_dir: Path | None = None) -> Image:
    """The built facade (640x480 BGR)."""
    return _facade(resolve_images_dir(images_dir))


@cache
def _sprite(kind: str) -> Image:
    import numpy as np

    if kind == "pot":  # a small dark flower pot / bottle
        yy, xx = np.mgrid[0:10, 0:10]
        disk = (yy - 4.5) ** 2 + (xx - 4.5) ** 2 <= 20
        out = np.zeros((10, 10, 3), dtype=np.uint8)
        out[disk] = (30, 45, 90)
        return out
    if kind == "bird":
        out = np.zeros((6, 12, 3), dtype=np.uint8)
        out[:] = (35, 35, 40)
        return out
    if kind == "leaf":
        out = np.zeros((5, 8, 3), dtype=np.uint8)
        out[:] = (40, 140, 70)
        return out
    if kind == "drop":
        out = np.zeros((8, 2, 3), dtype=np.uint8)
        out[:] = (250, 250, 250)
        return out
    if kind == "lift":
        out = np.zeros((70, 50, 3), dtype=np.uint8)
        out[:] = (120, 110, 100)
        out[6:64, 5:45] = (170, 160, 150)  # glass
        return out
    raise KeyError(kind)


def _paste_sprite(frame: Image, piece: Image, cx: float, cy: float) -> None:
    h, w = piece.shape[:2]
    x, y = round(cx - w / 2), round(cy - h / 2)
    fh, fw = frame.shape[:2]
    x1, y1, x2, y2 = max(0, x), max(0, y), min(fw, x + w), min(fh, y + h)
    if x2 <= x1 or y2 <= y1:
        return
    sub = piece[y1 - y : y2 - y, x1 - x : x2 - x]
    mask = sub.any(axis=2)
    frame[y1:y2, x1:x2][mask] = sub[mask]


@dataclass(frozen=True)
class Drop:
    """An object thrown from a window: floor (1..6), column index, velocities (m/s, px/s)."""

    at: float
    floor: int
    column: int
    up_mps: float = 0.0
    side_pxps: float = 0.0

    def start(self) -> tuple[float, float]:
        """(x px, height m) of the release point: the window's lower part."""
        return (self.column + 0.5) * W / len(COLUMNS), (self.floor - 1) * FLOOR_M + 1.0

    def landing_t(self) -> float:
        """Seconds after `at` when it reaches the ground line."""
        _, h0 = self.start()
        v = self.up_mps
        return (v + math.sqrt(v * v + 2 * G * h0)) / G

    def at_time(self, t: float) -> tuple[float, float] | None:
        """(x, y) px at clip time `t`, or None before the release and after landing."""
        s = t - self.at
        if s < 0 or s > self.landing_t():
            return None
        x0, h0 = self.start()
        h = h0 + self.up_mps * s - 0.5 * G * s * s
        return x0 + self.side_pxps * s, y_of_height(h)

    @property
    def lands_at(self) -> float:
        """Clip time of the landing."""
        return self.at + self.landing_t()


Mover = Callable[[float], list[tuple[str, float, float]]]
"""A distractor: clip time → sprites (kind, centre x, centre y) in that frame."""


@dataclass(frozen=True)
class FacadeClip:
    """A facade clip: drops, distractors, lighting gain steps."""

    name: str
    duration_s: float
    drops: list[Drop] = field(default_factory=list)
    movers: list[Mover] = field(default_factory=list)
    gain: list[tuple[float, float]] = field(default_factory=list)
    seed: int = 11
    fps: float = FPS
    images_dir: Path | None = None

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return int(self.duration_s * self.fps)

    def frame(self, i: int) -> Image:
        """Frame `i` (BGR, 640x480)."""

        t = i / self.fps
        frame = facade(self.images_dir).copy()
        for drop in self.drops:
            if (pos := drop.at_time(t)) is not None:
                _paste_sprite(frame, _sprite("pot"), *pos)
        for mover in self.movers:
            for kind, x, y in mover(t):
                if kind == "person":
                    person = cached_crop("person", resolve_images_dir(self.images_dir))
                    paste(frame, person, round(x), round(y))
                else:
                    _paste_sprite(frame, _sprite(kind), x, y)
        return exposed(frame, gain_at(self.gain, t), 2.0, self.seed * 100_003 + i)

    def frames(self) -> Iterator[tuple[float, Image]]:
        """(clip time, frame) for every frame."""
        for i in range(self.n_frames):
            yield i / self.fps, self.frame(i)


def drops() -> FacadeClip:
    """Six drops from floors 2 to 6 and several columns, dropped, tossed up and sideways."""
    plan = [
        Drop(1.0, 6, 1),
        Drop(4.0, 4, 3, up_mps=1.5, side_pxps=25.0),
        Drop(7.0, 2, 0, side_pxps=-15.0),
        Drop(10.0, 5, 4, up_mps=0.8, side_pxps=-30.0),
        Drop(13.0, 3, 2),
        Drop(16.0, 6, 3, up_mps=2.0, side_pxps=10.0),
    ]
    return FacadeClip("drops", 19.0, drops=plan)


def _bird(t: float) -> list[tuple[str, float, float]]:
    s = t - 0.5
    if s < 0 or s > 3.5:
        return []
    # Flaps along, dipping and climbing: no parabola, and mostly sideways.
    return [("bird", -10 + 190 * s, 160 + 45 * math.sin(2 * math.pi * 0.9 * s) + 12 * s)]


def _leaves(t: float) -> list[tuple[str, float, float]]:
    out = []
    for k, (x0, y0, at) in enumerate([(150, 60, 0.5), (330, 120, 1.0), (470, 40, 1.5)]):
        s = t - at
        if 0 <= s <= 4.0:
            # About 1 m/s down (a leaf's terminal speed), swaying: no acceleration to speak of.
            y = y0 + 32 * s
            out.append(("leaf", x0 + 18 * math.sin(2 * math.pi * 1.1 * s + k), y))
    return out


def _rain(t: float) -> list[tuple[str, float, float]]:
    out = []
    for k in range(40):
        period = 2.0
        phase = (t + k * 0.173) % period
        x = (k * 97.3) % W
        out.append(("drop", x, -10 + 260 * phase))  # 8 m/s, constant: it fell long before
    return out


def _person(t: float) -> list[tuple[str, float, float]]:
    return [("person", -100 + 60 * t, 250.0)] if t >= 0.5 else []


def _lift(t: float) -> list[tuple[str, float, float]]:
    # An outside lift cage climbs the facade: accelerates at 1 m/s^2 to 1.5 m/s, then cruises.
    s = max(0.0, t - 0.5)
    v_max, a = 1.5, 1.0
    h = 0.5 * a * s * s if s < v_max / a else v_max**2 / (2 * a) + v_max * (s - v_max / a)
    return [("lift", 600.0, y_of_height(1.5 + h) - 35)]


def distractors() -> dict[str, FacadeClip]:
    """One clip per thing that must not fire: bird, leaves, rain, person, lift, lighting."""
    return {
        "bird": FacadeClip("bird", 4.5, movers=[_bird]),
        "leaves": FacadeClip("leaves", 5.5, movers=[_leaves]),
        "rain": FacadeClip("rain", 4.0, movers=[_rain]),
        "person": FacadeClip("person", 4.0, movers=[_person]),
        "lift": FacadeClip("lift", 5.0, movers=[_lift]),
        "lighting": FacadeClip("lighting", 4.0, gain=[(1.0, 1.5), (2.5, 0.7), (3.2, 1.0)]),
    }
