"""Pretend IP cameras: play folders of JPEG frames as live MJPEG streams over HTTP.

Why not hand the edge node the folders directly: a recorded clip is processed as fast as the CPU
allows, but frames are stamped with the wall clock, so the dwell timers (seconds) would no longer
match the clip. Served as a live stream, a clip plays at its real pace (or `speed` times
faster), the node reads it exactly as it reads an IP camera, and the demo exercises the live
capture path (background reader, one-frame slot) that runs in the field.

Each camera's clock starts when the first client connects (the node loads its model first), so
no part of the clip is lost to start-up. After the last frame the camera keeps showing it, like a
real camera looking at a scene where nothing moves any more. Standard library only: the frames
are already JPEG files.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger(__name__)

BOUNDARY = "guanjiaframe"


@dataclass
class Clip:
    """One camera's frames (JPEG bytes) and its playback rate in frames per second."""

    camera_id: str
    frames: list[bytes]
    fps: float
    started_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_folder(cls, camera_id: str, folder: Path, fps: float) -> Clip:
        """Load every ``*.jpg`` of `folder`, in name order."""
        files = sorted(folder.glob("*.jpg"))
        if not files:
            raise FileNotFoundError(f"no JPEG frames in {folder}")
        return cls(camera_id, [path.read_bytes() for path in files], fps)

    @property
    def duration_s(self) -> float:
        """Wall-clock seconds from the first to past the last frame."""
        return len(self.frames) / self.fps

    def start(self, now: float) -> None:
        """Start the clip's clock (first client); later calls change nothing."""
        with self._lock:
            if self.started_at is None:
                self.started_at = now

    def index_at(self, now: float) -> int:
        """The frame on show at `now` (the last one once the clip is over)."""
        if self.started_at is None:
            return 0
        return min(int((now - self.started_at) * self.fps), len(self.frames) - 1)

    def progress(self, now: float) -> float:
        """0..1 of the clip played."""
        if self.started_at is None:
            return 0.0
        return min(1.0, (now - self.started_at) / self.duration_s)

    def finished(self, now: float) -> bool:
        """True once every frame has been on show."""
        return self.started_at is not None and now - self.started_at >= self.duration_s


class CameraServer:
    """``GET /<camera_id>.mjpg`` streams that camera's clip as multipart JPEG."""

    def __init__(self, clips: list[Clip], host: str = "127.0.0.1", port: int = 0) -> None:
        self.clips = {clip.camera_id: clip for clip in clips}
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="demo-cameras", daemon=True
        )

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    def url(self, camera_id: str) -> str:
        """The stream URL of one camera."""
        return f"http://127.0.0.1:{self.port}/{camera_id}.mjpg"

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def all_finished(self, now: float) -> bool:
        """True once every clip has played to its end."""
        return all(clip.finished(now) for clip in self.clips.values())

    def close(self) -> None:
        """Stop serving; open streams end within one frame interval."""
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.strip("/").removesuffix(".mjpg")
                clip = server.clips.get(name)
                if clip is None:
                    self.send_error(404, f"no camera {name!r}")
                    return
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                # The reader may go away at any time (node stopped or reconnecting).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    server._stream(clip, self)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("camera server: " + format, *args)

        return Handler

    def _stream(self, clip: Clip, handler: BaseHTTPRequestHandler) -> None:
        clip.start(time.monotonic())
        while not self._stop.is_set():
            now = time.monotonic()
            frame = clip.frames[clip.index_at(now)]
            handler.wfile.write(
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                f"Content-Length: {len(frame)}\r\n\r\n".encode()
                + frame
                + b"\r\n"
            )
            handler.wfile.flush()
            assert clip.started_at is not None
            next_due = clip.started_at + (int((now - clip.started_at) * clip.fps) + 1) / clip.fps
            self._stop.wait(max(0.0, next_due - time.monotonic()))
