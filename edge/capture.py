"""Frame capture: the only module doing OpenCV I/O (VideoCapture, image files).

Sources: ``rtsp://`` / ``http(s)://`` URLs and USB cameras (live), video files and folders of
images (recorded). `open_source` picks the kind from the config's ``source``.

- Live sources are read by a background thread that keeps only the newest frame (a one-slot
  buffer, never an unbounded queue): a slow consumer sees fresh frames and the skipped ones are
  counted as dropped. When the stream dies (read fails or is silent for ``read_timeout_s``) the
  thread reopens it with exponential backoff, counting reconnects; `read` just returns None
  while the camera is offline.
- Recorded sources are read in the caller's thread, frame by frame, decimated to the target fps
  (skipped frames counted as dropped). ``Frame.clip_s`` is the position in the clip, which is
  what ``guanjia edge replay`` uses as simulated time. A corrupt image in a folder is skipped
  and counted, never a crash.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from edge.camera_config import CameraConfig
from edge.imaging import as_image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})


class CaptureError(OSError):
    """A recorded source cannot be opened (missing file, empty folder, unreadable video)."""


@dataclass(frozen=True)
class Frame:
    """One captured BGR frame.

    ``ts`` is the wall-clock time of capture (epoch seconds); ``clip_s`` the position in the
    source (seconds since the clip's first frame; for live sources since `open_source`).
    """

    image: npt.NDArray[np.uint8]
    ts: float
    clip_s: float
    index: int


@dataclass(frozen=True)
class CaptureStats:
    """Counters of one source since it was opened."""

    frames_read: int
    frames_dropped: int
    reconnects: int
    online: bool
    corrupt_frames: int = 0


class FrameSource(Protocol):
    """A camera or recording, read one frame at a time."""

    @property
    def live(self) -> bool:
        """True for cameras and streams; False for files and folders (replayable)."""

    @property
    def ended(self) -> bool:
        """True once a recorded source has no more frames (never for live sources)."""

    def read(self, timeout: float = 1.0) -> Frame | None:
        """The next frame at the target fps; None at the end of a recording or while offline."""

    def stats(self) -> CaptureStats:
        """Counters since open."""

    def close(self) -> None:
        """Release the device or file; idempotent."""


def read_image(path: Path) -> npt.NDArray[np.uint8]:
    """Read one image file as BGR; CaptureError if missing or undecodable."""
    if not path.is_file():
        raise CaptureError(f"image {path} not found")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise CaptureError(f"image {path} is not a decodable image (corrupt or unsupported)")
    return as_image(image)


class _Recording:
    """What the folder and video sources share: decimation to the target fps, counters, end."""

    live = False

    def __init__(self, native_fps: float, target_fps: float) -> None:
        self._native = native_fps if native_fps > 0 else target_fps
        self._period = 1.0 / min(self._native, target_fps)  # never more frames than it has
        self._next_due = 0.0
        self._read = self._dropped = self._corrupt = 0
        self._ended = False

    @property
    def ended(self) -> bool:
        """True after the last frame."""
        return self._ended

    def _due(self, index: int) -> float | None:
        """Clip time of frame `index` if it is due at the target fps; else count it dropped."""
        clip_s = index / self._native
        # index / native can land a hair below a due time that is a multiple of the period.
        if clip_s + 1e-9 < self._next_due:
            self._dropped += 1
            return None
        return clip_s

    def _hand_out(self, image: object, clip_s: float, index: int) -> Frame:
        """Count a decoded frame as read; the next one is due a period later."""
        self._read += 1
        self._next_due = clip_s + self._period
        return Frame(image=as_image(image), ts=time.time(), clip_s=clip_s, index=index)

    def stats(self) -> CaptureStats:
        """Counters since open."""
        return CaptureStats(
            frames_read=self._read,
            frames_dropped=self._dropped,
            reconnects=0,
            online=not self._ended,
            corrupt_frames=self._corrupt,
        )


class FolderSource(_Recording):
    """A sorted folder of images played as a clip at `native_fps` (default: target fps)."""

    def __init__(self, folder: Path, target_fps: float, native_fps: float | None = None) -> None:
        self._files = sorted(
            p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if not self._files:
            raise CaptureError(f"folder {folder} holds no images ({sorted(IMAGE_SUFFIXES)})")
        super().__init__(native_fps or target_fps, target_fps)
        self._pos = 0

    def read(self, timeout: float = 1.0) -> Frame | None:
        """Next image due at the target fps; corrupt files are skipped and counted."""
        del timeout  # a folder never waits
        while self._pos < len(self._files):
            index, path = self._pos, self._files[self._pos]
            self._pos += 1
            clip_s = self._due(index)
            if clip_s is None:
                continue
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                self._corrupt += 1
                log.warning("skipping corrupt image %s", path)
                continue
            return self._hand_out(image, clip_s, index)
        self._ended = True
        return None

    def close(self) -> None:
        """Nothing to release."""
        self._ended = True


class VideoFileSource(_Recording):
    """A video file decoded frame by frame, decimated to the target fps."""

    def __init__(self, path: Path, target_fps: float) -> None:
        if not path.is_file():
            raise CaptureError(f"video file {path} not found")
        self._cap = cv2.VideoCapture(str(path))
        if not self._cap.isOpened():
            raise CaptureError(f"video file {path} cannot be opened (unsupported or corrupt)")
        super().__init__(float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0), target_fps)
        self._index = 0

    def read(self, timeout: float = 1.0) -> Frame | None:
        """Next frame due at the target fps; skipped frames are grabbed without decoding."""
        del timeout
        while not self._ended:
            index = self._index
            if not self._cap.grab():
                self._ended = True
                break
            self._index += 1
            clip_s = self._due(index)
            if clip_s is None:
                continue
            ok, image = self._cap.retrieve()
            if not ok or image is None:
                self._dropped += 1
                continue
            return self._hand_out(image, clip_s, index)
        return None

    def close(self) -> None:
        """Release the decoder."""
        self._ended = True
        self._cap.release()


class LiveSource:
    """A camera or network stream read by a background thread into a one-frame slot.

    The thread reads as fast as the stream delivers (RTSP must be drained or it lags behind),
    keeps the newest frame and counts the ones nobody took as dropped. `read` hands out at most
    `target_fps` frames per second.
    """

    live = True

    def __init__(self, target: str | int, config: CameraConfig) -> None:
        self._target = target
        self._fps = config.fps
        self._reconnect = config.reconnect
        self._cond = threading.Condition()
        self._slot: Frame | None = None
        self._read = self._dropped = self._reconnects = 0
        self._online = False
        self._stop = threading.Event()
        self._opened_at = time.monotonic()
        self._last_handed = 0.0
        self._index = 0
        self._thread = threading.Thread(
            target=self._run, name=f"capture-{config.camera_id}", daemon=True
        )
        self._thread.start()

    @property
    def ended(self) -> bool:
        """Live sources end only when closed."""
        return self._stop.is_set()

    def _open(self) -> cv2.VideoCapture | None:
        if isinstance(self._target, int):
            cap = cv2.VideoCapture(self._target)
        else:
            cap = cv2.VideoCapture(
                self._target,
                cv2.CAP_ANY,
                [
                    cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                    int(self._reconnect.read_timeout_s * 1000),
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                    int(self._reconnect.read_timeout_s * 1000),
                ],
            )
        if cap.isOpened():
            return cap
        cap.release()
        return None

    def _run(self) -> None:
        backoff = self._reconnect.initial_s
        ever_online = False
        while not self._stop.is_set():
            cap = self._open()
            if cap is None:
                log.warning("camera %s: cannot open, retrying in %.1f s", self._target, backoff)
            else:
                if ever_online:
                    self._reconnects += 1
                ever_online = True
                with self._cond:
                    self._online = True
                backoff = self._reconnect.initial_s
                self._pump(cap)
                cap.release()
                with self._cond:
                    self._online = False
                if self._stop.is_set():
                    return
                log.warning("camera %s: stream lost, reconnecting in %.1f s", self._target, backoff)
            # Sleep in small steps so close() is not held up by a long backoff.
            deadline = time.monotonic() + backoff
            while not self._stop.is_set() and time.monotonic() < deadline:
                time.sleep(min(0.1, backoff))
            backoff = min(backoff * 2, self._reconnect.max_s)

    def _pump(self, cap: cv2.VideoCapture) -> None:
        while not self._stop.is_set():
            ok, image = cap.read()
            if not ok or image is None:
                return
            frame = Frame(
                image=as_image(image),
                ts=time.time(),
                clip_s=time.monotonic() - self._opened_at,
                index=self._index,
            )
            self._index += 1
            with self._cond:
                if self._slot is not None:
                    self._dropped += 1
                self._slot = frame
                self._read += 1
                self._cond.notify_all()

    def read(self, timeout: float = 1.0) -> Frame | None:
        """The newest frame, paced to the target fps; None if none arrives within `timeout`."""
        wait = self._last_handed + 1.0 / self._fps - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, timeout))
        with self._cond:
            if self._slot is None:
                self._cond.wait_for(lambda: self._slot is not None or self._stop.is_set(), timeout)
            frame, self._slot = self._slot, None
        if frame is not None:
            self._last_handed = time.monotonic()
        return frame

    def stats(self) -> CaptureStats:
        """Counters since open; `online` is False while reconnecting."""
        with self._cond:
            return CaptureStats(
                frames_read=self._read,
                frames_dropped=self._dropped,
                reconnects=self._reconnects,
                online=self._online,
            )

    def close(self) -> None:
        """Stop the reader thread and release the stream."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=self._reconnect.read_timeout_s + 2)


def source_kind(source: str | int) -> str:
    """'usb', 'stream', 'folder' or 'file' for a config's ``source`` value."""
    if isinstance(source, int) or source.startswith("usb:"):
        return "usb"
    if "://" in source:
        return "stream"
    return "folder" if Path(source).is_dir() else "file"


def open_source(config: CameraConfig, *, native_fps: float | None = None) -> FrameSource:
    """Open the config's source: URL or USB → live thread; video file or folder → clip.

    `native_fps` sets the frame rate of an image folder (default: the target fps).
    Raises `CaptureError` for a recorded source that cannot be opened; live sources never
    raise here, they keep reconnecting (see `CaptureStats.online`).
    """
    source = config.source
    kind = source_kind(source)
    if kind == "usb":
        index = source if isinstance(source, int) else int(str(source)[4:])
        return LiveSource(index, config)
    if kind == "stream":
        return LiveSource(str(source), config)
    path = Path(str(source))
    if kind == "folder":
        return FolderSource(path, config.fps, native_fps)
    return VideoFileSource(path, config.fps)
