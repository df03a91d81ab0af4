"""The zombie-car story (僵尸车): seven and a quarter days at one camera, compressed in time.

A frame every few hours of simulated time, and real-time 5 fps episodes whenever something
moves; nights, dusk and rain change the light; the test restarts the node in the middle. Built
from the same photos and crops as `guanjia.scenes`. Importing it needs neither OpenCV nor numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guanjia.scene_clips import FPS, Path2D, exposed, paste
from guanjia.scene_photos import cached_background, cached_crop, resolve_images_dir
from guanjia.scenes import PARK_SPOT

if TYPE_CHECKING:
    from guanjia.scene_photos import Image

ZOMBIE_T0 = 1_798_761_600.0
"""2027-01-01 08:00 in Asia/Shanghai (00:00 UTC): the story's first frame."""
HOUR = 3600.0
DAY = 24 * HOUR
ZOMBIE_SPOT = PARK_SPOT
"""Where car A stops (top-left of the crop), and stays for good."""
SIX_DAY_SPOT = (300.0, 310.0)
"""Where car B stops, 1 day in, and leaves 6 days later."""
RESTART_AT = 3.5 * DAY
"""When the node restarts in the story (20:00 on day 3: at night)."""


@dataclass(frozen=True)
class Shot:
    """One frame of a story in simulated time: `t` seconds after `ZOMBIE_T0`."""

    t: float
    cars: tuple[tuple[float, float], ...]
    gain: float
    noise: float
    seed: int

    def frame(self, images_dir: Path | None = None) -> Image:
        """The frame (BGR, 640x480)."""

        folder = resolve_images_dir(images_dir)
        frame = cached_background(folder).copy()
        for x, y in self.cars:
            paste(frame, cached_crop("car", folder), round(x), round(y))
        return exposed(frame, self.gain, self.noise, self.seed)


def _light(t: float) -> tuple[float, float]:
    """(gain, noise) of the scene at story time `t`: night, dusk, and rain on days 4 and 5."""
    hour = (8.0 + t / HOUR) % 24.0
    day = int(t // DAY)
    if hour >= 20.0 or hour < 6.0:
        return 0.35, 3.0  # street lights: dark, grainy
    if hour >= 18.0 or hour < 7.0:
        return 0.7, 2.0
    if day in {4, 5}:
        return 0.8, 7.0  # rain: duller, noisy
    return 1.0, 2.0


def zombie_story(*, step_h: float = 3.0) -> list[Shot]:
    """Seven days and four hours at one camera, compressed: a frame every `step_h` hours, and
    real-time 5 fps episodes whenever something moves.

    - t = 0: car A drives in and parks at `ZOMBIE_SPOT`; it never leaves (the zombie).
    - day 1, 08:00: car B drives in and parks at `SIX_DAY_SPOT`; day 7, 08:00 it drives off
      (6 days: no zombie).
    - day 2, 09:00: car C drives past in front of both.
    - nights (20:00-06:00) are dark and grainy, dusk and dawn dim, days 4 and 5 rainy.
    - the node restarts at `RESTART_AT` (the test rebuilds the pipeline there).
    """
    ax, ay = ZOMBIE_SPOT
    bx, by = SIX_DAY_SPOT
    a_in = Path2D("car", [(0.0, -150.0, ay), (2.0, ax, ay)])
    b_in, b_out = 1 * DAY, 7 * DAY
    b_path = Path2D(
        "car", [(b_in, 640.0, by), (b_in + 2.0, bx, by), (b_out, bx, by), (b_out + 2.5, 640.0, by)]
    )
    c_at = 2 * DAY + HOUR
    c_path = Path2D("car", [(c_at, 640.0, 350.0), (c_at + 5.0, -160.0, 350.0)])
    end = 7 * DAY + 4 * HOUR
    times: set[float] = set()
    step = step_h * HOUR
    times.update(k * step for k in range(int(end // step) + 1))
    for start in (0.0, b_in, b_out, c_at):  # 4 s of real time at 5 fps around each movement
        times.update(start + i / FPS for i in range(20))
    shots = []
    for i, t in enumerate(sorted(times)):
        cars = [pos for p in (b_path, c_path) if (pos := p.at(t)) is not None]
        a = a_in.at(min(t, 2.0))
        if a is not None:
            cars.insert(0, a)
        gain, noise = _light(t)
        shots.append(Shot(t, tuple((float(x), float(y)) for x, y in cars), gain, noise, 1000 + i))
    return shots


def zombie_config(**extra: Any) -> dict[str, Any]:
    """The car-park camera: a zombie-vehicle area over the lower left of the street."""
    return {
        "camera_id": "cam-carpark",
        "source": "unused",
        "fps": FPS,
        "tracker": {"stationary_s": 1.0},
        "zones": [
            {
                "id": "carpark",
                "rule": "zombie_vehicle",
                "polygon": [[0.0, 0.6], [0.7, 0.6], [0.7, 1.0], [0.0, 1.0]],
            }
        ],
        **extra,
    }
