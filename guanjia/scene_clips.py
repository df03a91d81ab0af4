"""A scenario clip: objects cut from the shared photos, moved along keyframed paths.

Every clip is 640x480 (5 fps unless a scenario says otherwise), with a little sensor noise per
frame (seeded), and is produced lazily (`Scenario.frame(i)`), so a caller holds one frame at a
time. Object paths are keyframed: the crop moves linearly between keyframes and is clipped at
the frame border. `write_clip` writes a clip as a video file or a folder of JPEGs. Importing
this module needs neither OpenCV nor numpy.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from guanjia.scene_photos import H, W, cached_background, cached_crop, resolve_images_dir

if TYPE_CHECKING:
    from guanjia.scene_photos import Image

FPS = 5.0

Camera = Literal["lane", "cabin", "garbage"]
"""The cameras of `guanjia.scenes` a scenario can be filmed by."""


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


def gain_at(steps: list[tuple[float, float]], t: float) -> float:
    """The brightness gain at clip time `t` of steps (from t, gain); 1.0 before the first."""
    gain = 1.0
    for start, g in steps:
        if t >= start:
            gain = g
    return gain


def exposed(frame: Image, gain: float, noise: float, seed: int) -> Image:
    """`frame` under `gain`, with seeded sensor noise of standard deviation `noise` (float32).

    The facade and zombie clips' sensor; `Scenario` keeps its own float64 noise, so that the
    scenario clips the tests were tuned on stay the same to the pixel.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    grain = rng.standard_normal(frame.shape, dtype=np.float32) * np.float32(noise)
    noisy = frame.astype(np.float32) * np.float32(gain) + grain
    return np.clip(noisy, 0, 255).astype(np.uint8)


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
        frame = cached_background(images_dir).copy()
        for path in self.paths:
            pos = path.at(t)
            if pos is not None:
                paste(frame, cached_crop(path.obj, images_dir), *pos)
        rng = np.random.default_rng(self.seed * 100_003 + i)
        noisy = frame.astype(np.int16) * gain_at(self.gain, t) + rng.normal(0, 2.0, frame.shape)
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
