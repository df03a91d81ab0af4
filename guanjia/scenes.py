"""Scenario clips built from the shared real photos: real object crops pasted on a real street.

Used by the edge tests, the edge benchmarks and the demo. Importing this module has no side
effects and needs neither OpenCV nor numpy: both are imported when a frame is first drawn.

Every clip is 640x480 at 5 fps, with a little sensor noise per frame (seeded), and is produced
lazily (`Scenario.frame(i)`), so a caller holds one frame at a time. Object paths are keyframed:
the crop moves linearly between keyframes and is clipped at the frame border.

The photos come from a shared directory (`resolve_images_dir`): an explicit path, else the
``GUANJIA_TESTDATA_DIR`` environment variable, else ``../shared/testdata/images`` beside the
checkout. Crops (see SOURCE.txt there):

- ``car``: the saloon in 000000423617 (yolox_nano: car 0.81 when pasted here),
- ``moto``: the motorcycle and rider of 000000165518 with its foggy surroundings (the model
  needs that context to see the motorcycle at all),
- ``bicycle``: the bicycle (with the dog) of dog.jpg,
- ``person``: a pedestrian of 000000183709.

No bag in these photos is detected by yolox_nano on its own (the handbag crop of 000000183709
comes out as a "traffic light"; its best handbag score is below 0.001), so the litter scenario
uses a dumped bicycle and a litter zone watching two-wheelers as well.

Each scenario names the camera it is filmed by (`Scenario.camera`); `camera_config(scenario)`
gives that camera's config as a dict ready for `edge.camera_config.parse_camera_config` or a
YAML file, with short dwell times (minutes of real life become seconds of clip).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Image: TypeAlias = npt.NDArray[np.uint8]

ENV_VAR = "GUANJIA_TESTDATA_DIR"
W, H, FPS = 640, 480, 5.0
_REPO_ROOT = Path(__file__).resolve().parent.parent
_BACKGROUND = "000000231460.jpg"

Camera = Literal["lane", "cabin", "garbage"]

_CROPS: dict[str, tuple[str, tuple[int, int, int, int], int, float]] = {
    # name: (file, box x1 y1 x2 y2, margin px, scale)
    "car": ("000000423617.jpg", (127, 295, 268, 400), 4, 1.0),
    "moto": ("000000165518.jpg", (253, 260, 427, 512), 60, 0.8),
    "bicycle": ("dog.jpg", (52, 137, 572, 424), 4, 0.6),
    "person": ("000000183709.jpg", (304, 192, 482, 637), 4, 0.5),
}


class ScenesError(FileNotFoundError):
    """The shared photos are not where we looked; the message says where and why there."""


def needed_photos() -> set[str]:
    """The file names of every photo the clips are cut from."""
    return {_BACKGROUND} | {file for file, *_ in _CROPS.values()}


def resolve_images_dir(explicit: Path | None = None) -> Path:
    """The directory of shared photos the clips are pasted from.

    Order: `explicit` if given (no fallback), else ``$GUANJIA_TESTDATA_DIR``, else where
    `guanjia.assets` keeps them (a mirror such as ``../shared/testdata/images`` beside the
    checkout, or the user cache; never downloads here). Raises `ScenesError` naming the path,
    where the choice came from, and the files that are missing.
    """
    if explicit is not None:
        candidate, how = Path(explicit), "explicit argument"
    elif os.environ.get(ENV_VAR):
        candidate, how = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    else:
        from guanjia.assets import AssetError, ensure_photos

        try:
            return ensure_photos(download=False)
        except AssetError as exc:
            raise ScenesError(
                f"scenario photos: {exc} (or run `guanjia model fetch demo-photos`)"
            ) from None
    if not candidate.is_dir():
        raise ScenesError(
            f"scenario photos directory {candidate} (from {how}) does not exist; "
            f"set {ENV_VAR} or pass the directory explicitly"
        )
    missing = sorted(name for name in needed_photos() if not (candidate / name).is_file())
    if missing:
        raise ScenesError(
            f"scenario photos directory {candidate} (from {how}) lacks {', '.join(missing)}"
        )
    return candidate


def _read(path: Path) -> Image:
    import cv2
    import numpy as np

    image = cv2.imread(str(path))
    if image is None:
        raise ScenesError(f"cannot decode scenario photo {path}")
    return np.asarray(image, dtype=np.uint8)


def resize(image: Image, size: tuple[int, int]) -> Image:
    """`image` resized to `size` (width, height) with area averaging: the clips' one resize."""
    import cv2
    import numpy as np

    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def background(images_dir: Path | None = None) -> Image:
    """The street of 000000231460 at 640x480 (a parked car at its right stays in every frame)."""
    # Resolved on every call (a few stat calls) so a changed $GUANJIA_TESTDATA_DIR is honoured.
    return _background(resolve_images_dir(images_dir))


def crop(name: str, images_dir: Path | None = None) -> Image:
    """One object crop (``car``, ``moto``, ``bicycle``, ``person``), scaled for the scene."""
    return _crop(name, resolve_images_dir(images_dir))


@cache
def _background(images_dir: Path) -> Image:
    import cv2
    import numpy as np

    image = _read(images_dir / _BACKGROUND)
    return np.ascontiguousarray(cv2.resize(image, (W, H), interpolation=cv2.INTER_AREA))


@cache
def _crop(name: str, images_dir: Path) -> Image:
    import cv2
    import numpy as np

    if name == "van":
        return _van()
    file, (x1, y1, x2, y2), m, scale = _CROPS[name]
    image = _read(images_dir / file)
    piece = image[max(0, y1 - m) : y2 + m, max(0, x1 - m) : x2 + m]
    return np.ascontiguousarray(cv2.resize(piece, None, fx=scale, fy=scale))


def _van() -> Image:
    """A flat-sided van body seen side-on (drawn, not a photo): a large occluder.

    The model does not take it for a vehicle (it has no wheels or perspective), which is what
    an occlusion test needs: something that hides a parked object without being tracked.
    """
    import cv2
    import numpy as np

    van = np.full((170, 260, 3), (205, 200, 190), dtype=np.uint8)
    for i, x in enumerate(range(14, 246, 58)):
        cv2.rectangle(van, (x, 18), (x + 44, 70), (70 + 9 * i, 60, 50), -1)
    cv2.rectangle(van, (0, 96), (259, 112), (40, 120, 200), -1)  # the company stripe
    cv2.rectangle(van, (0, 0), (259, 169), (90, 90, 90), 3)
    return van


@dataclass(frozen=True)
class Path2D:
    """Keyframes (t seconds, x, y) of a crop's top-left corner; absent outside [first, last]."""

    obj: str
    keys: list[tuple[float, float, float]]

    def at(self, t: float) -> tuple[int, int] | None:
        """Top-left corner at clip time `t`, or None when the object is not in the clip then."""
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
    fh, fw = frame.shape[:2]
    fx1, fy1, fx2, fy2 = max(0, x), max(0, y), min(fw, x + w), min(fh, y + h)
    if fx2 <= fx1 or fy2 <= fy1:
        return
    frame[fy1:fy2, fx1:fx2] = piece[fy1 - y : fy2 - y, fx1 - x : fx2 - x]


@dataclass(frozen=True)
class Scenario:
    """A clip: duration, moving objects, optional lighting gain steps, noise seed.

    `camera` names the camera config that goes with it (`camera_config`); `images_dir`
    overrides where the photos come from (see `resolve_images_dir`).
    """

    name: str
    duration_s: float
    paths: list[Path2D]
    gain: list[tuple[float, float]] = field(default_factory=list)  # (from t, brightness gain)
    seed: int = 7
    fps: float = FPS
    camera: Camera | None = None
    images_dir: Path | None = None

    @property
    def n_frames(self) -> int:
        """Number of frames in the clip."""
        return int(self.duration_s * self.fps)

    def frame(self, i: int) -> Image:
        """Frame `i` (BGR, 640x480), deterministic for a given scenario and index."""
        import numpy as np

        t = i / self.fps
        images_dir = resolve_images_dir(self.images_dir)
        frame = _background(images_dir).copy()
        for path in self.paths:
            pos = path.at(t)
            if pos is not None:
                paste(frame, _crop(path.obj, images_dir), *pos)
        gain = 1.0
        for start, g in self.gain:
            if t >= start:
                gain = g
        rng = np.random.default_rng(self.seed * 100_003 + i)
        noisy = frame.astype(np.int16) * gain + rng.normal(0, 2.0, frame.shape)
        return np.clip(noisy, 0, 255).astype(np.uint8)

    def frames(self) -> Iterator[tuple[float, Image]]:
        """(clip time in seconds, frame) for every frame, one at a time."""
        for i in range(self.n_frames):
            yield i / self.fps, self.frame(i)

    def write_folder(self, folder: Path) -> Path:
        """Write the clip as numbered JPEGs (quality 92) for `guanjia edge replay`."""
        return write_clip(self, folder)


VIDEO_SUFFIXES = (".avi", ".mkv")


class Clip(Protocol):
    """What `write_clip` needs: a frame rate, a frame count and frames by index."""

    @property
    def fps(self) -> float: ...

    @property
    def n_frames(self) -> int: ...

    def frame(self, i: int) -> Image: ...


def write_clip(scenario: Clip, out: Path) -> Path:
    """Write `scenario` for `guanjia edge replay` / `edge.capture`, and return what was written.

    If `out` ends in ``.avi`` or ``.mkv`` the clip becomes one Motion-JPEG video file at that
    path (the codec every OpenCV build can write and read); otherwise `out` is a folder that
    receives numbered JPEG frames ``00000.jpg``, ``00001.jpg``, ... (quality 92), replayed at
    the camera config's fps. Parent folders are created.
    """
    import cv2

    out = Path(out)
    if out.suffix.lower() in VIDEO_SUFFIXES:
        out.parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"MJPG"), scenario.fps, (W, H))
        if not writer.isOpened():
            raise OSError(f"cannot open a video writer for {out}")
        try:
            for i in range(scenario.n_frames):
                writer.write(scenario.frame(i))
        finally:
            writer.release()
        return out
    out.mkdir(parents=True, exist_ok=True)
    for i in range(scenario.n_frames):
        path = out / f"{i:05d}.jpg"
        if not cv2.imwrite(str(path), scenario.frame(i), [cv2.IMWRITE_JPEG_QUALITY, 92]):
            raise OSError(f"cannot write frame {path}")
    return out


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
