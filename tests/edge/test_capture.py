"""Capture from image folders, video files and a network stream that dies and comes back."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera_config import CameraConfig, parse_camera_config
from edge.capture import CaptureError, open_source, read_image, source_kind
from tests.support.broker import free_port


def _config(source: str, fps: float = 5.0, **extra: object) -> CameraConfig:
    return parse_camera_config({"camera_id": "cam", "source": source, "fps": fps, **extra})


def _write_video(path: Path, frames: int, fps: float) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (320, 240))
    for i in range(frames):
        frame = np.full((240, 320, 3), (i * 5) % 255, dtype=np.uint8)
        writer.write(frame)
    writer.release()
    return path


def test_source_kinds(tmp_path: Path) -> None:
    assert source_kind(0) == "usb"
    assert source_kind("usb:1") == "usb"
    assert source_kind("rtsp://cam/1") == "stream"
    assert source_kind(str(tmp_path)) == "folder"
    assert source_kind(str(tmp_path / "a.mp4")) == "file"


def test_folder_skips_corrupt_images_and_decimates(tmp_path: Path) -> None:
    # Synthetic frames: this is about the folder reader, not the photos (it needs no ../shared).
    for i in range(20):
        image = np.full((480, 640, 3), (i * 11) % 255, dtype=np.uint8)
        cv2.putText(image, str(i), (50, 200), cv2.FONT_HERSHEY_SIMPLEX, 4, (255, 255, 255), 5)
        assert cv2.imwrite(str(tmp_path / f"{i:05d}.jpg"), image)
    (tmp_path / "00003.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "00004.jpg").write_bytes((tmp_path / "00004.jpg").read_bytes()[:200])
    source = open_source(_config(str(tmp_path), fps=5.0), native_fps=10.0)
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    stats = source.stats()
    assert source.ended
    assert stats.corrupt_frames >= 1
    assert stats.frames_read == len(frames)
    assert stats.frames_read + stats.frames_dropped + stats.corrupt_frames == 20
    # 5 fps out of 10: frames 0.2 s apart in clip time (a skipped corrupt one shifts one step).
    assert 9 <= len(frames) <= 10
    assert frames[1].clip_s == pytest.approx(0.2)
    assert all(f.image.shape == (480, 640, 3) for f in frames)


def test_video_file_is_decimated_to_target_fps(tmp_path: Path) -> None:
    path = _write_video(tmp_path / "clip.avi", frames=30, fps=15.0)
    source = open_source(_config(str(path), fps=5.0))
    clip_times = []
    while (frame := source.read()) is not None:
        clip_times.append(frame.clip_s)
    source.close()
    stats = source.stats()
    assert stats.frames_read == 10
    assert stats.frames_dropped == 20
    assert clip_times[:3] == pytest.approx([0.0, 0.2, 0.4])


def test_missing_or_broken_recordings(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="not found"):
        open_source(_config(str(tmp_path / "nope.mp4")))
    (tmp_path / "broken.mp4").write_bytes(b"garbage" * 100)
    with pytest.raises(CaptureError, match="cannot be opened"):
        open_source(_config(str(tmp_path / "broken.mp4")))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CaptureError, match="no images"):
        open_source(_config(str(empty)))
    (tmp_path / "x.jpg").write_bytes(b"nope")
    with pytest.raises(CaptureError, match="not a decodable image"):
        read_image(tmp_path / "x.jpg")


class _Server:
    """A plain HTTP file server we can stop and start again on the same port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.httpd: http.server.ThreadingHTTPServer | None = None

    def start(self) -> None:
        handler = functools.partial(_QuietHandler, directory=str(self.root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self.httpd is not None
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_clip(tmp_path: Path) -> Iterator[_Server]:
    _write_video(tmp_path / "live.avi", frames=20, fps=20.0)
    server = _Server(tmp_path)
    server.start()
    yield server
    if server.httpd is not None:
        server.stop()


def _wait(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_stream_that_dies_reconnects(http_clip: _Server) -> None:
    # An HTTP stream ends (server gone, or the clip ran out): the reader reconnects with
    # backoff, reports offline meanwhile, never raises, and never queues more than one frame.
    config = _config(
        f"http://127.0.0.1:{http_clip.port}/live.avi",
        fps=50.0,
        reconnect={"initial_s": 0.1, "max_s": 0.4, "read_timeout_s": 2.0},
    )
    source = open_source(config)
    try:
        assert source.live
        assert _wait(lambda: source.read(timeout=0.2) is not None)
        http_clip.stop()
        assert _wait(lambda: not source.stats().online)
        source.read(timeout=0.3)  # may hand out the last frame read before the drop
        assert source.read(timeout=0.3) is None  # offline: nothing, and no exception
        http_clip.start()
        assert _wait(lambda: source.stats().reconnects >= 1 and source.stats().online)
        assert _wait(lambda: source.read(timeout=0.2) is not None)
        stats = source.stats()
        assert stats.frames_read > 20  # frames came from both connections
        assert stats.frames_read >= stats.frames_dropped
    finally:
        source.close()
    assert source.ended
