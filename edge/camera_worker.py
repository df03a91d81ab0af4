"""A node's cameras: loading their configs, and one worker thread per camera.

`CameraWorker` runs a camera's frame loop: read a frame, run its pipeline (`CameraPipeline`,
or `FacadePipeline` for a facade camera), hand the events to the node's uplink. When the
source ends (a recorded clip) or the camera stops, the tracks still open are judged
(`flush`), so a fall still in the air then is not lost. `edge.app.EdgeNode` owns the workers.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from contract import Manifest
from edge.camera_config import CameraConfig, load_camera_config, parse_camera_config
from edge.heartbeat import CameraSample
from edge.node_config import CameraRef

if TYPE_CHECKING:
    from edge.app import EdgeNode

log = logging.getLogger(__name__)


def resolve_camera(ref: CameraRef, base: Path) -> CameraConfig:
    """Load one camera reference; relative paths are relative to the node config's directory."""
    if ref.path is not None:
        path = ref.path if ref.path.is_absolute() else base / ref.path
        return load_camera_config(path)
    return parse_camera_config(ref.inline, origin="<inline camera>")


def resolve_cameras(refs: list[CameraRef], base: Path) -> list[CameraConfig]:
    """Load every camera; raise CameraConfigError / ValueError naming the first problem."""
    cameras = [resolve_camera(ref, base) for ref in refs]
    ids = [camera.camera_id for camera in cameras]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"camera ids must be unique on a node, repeated: {repeated}")
    return cameras


class CameraWorker:
    """One camera's thread: read a frame, run the pipeline, hand events to the uplink."""

    def __init__(
        self, config: CameraConfig, manifest: Manifest, model_dir: Path, node: EdgeNode
    ) -> None:
        from edge.capture import open_source
        from edge.detector import load_detector
        from edge.facade_pipeline import FacadePipeline, is_facade_camera
        from edge.pipeline import CameraPipeline
        from edge.stationary_memory import StationaryMemory

        self.config = config
        self._node = node
        # Stationary objects (zombie-car clocks) survive restarts of the node.
        self._memory_file = node.config.data_dir / f"stationary-{config.camera_id}.json"
        self.pipeline: CameraPipeline | FacadePipeline
        if is_facade_camera(config):  # thrown objects: no detector, motion blobs only
            self.pipeline = FacadePipeline(
                config, site_id=node.config.site_id, device_id=node.config.device_id
            )
        else:
            self.pipeline = CameraPipeline(
                config,
                load_detector(model_dir, manifest, threads=config.detector_threads),
                node.actions,
                site_id=node.config.site_id,
                device_id=node.config.device_id,
                memory=StationaryMemory.load(
                    self._memory_file, config.tracker.remember_stationary_s
                ),
            )
        self.source = open_source(config)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"camera-{config.camera_id}", daemon=True
        )
        self.finished = threading.Event()
        self.failed = False
        """The frame loop stopped on an error (probation counts this as a regression)."""

    @property
    def live(self) -> bool:
        """True for cameras/streams, False for clips."""
        return self.source.live

    def start(self) -> None:
        """Start the frame loop."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop (if it ever started) and release the source."""
        self._stop.set()
        # A config applied while the node stops swaps in workers that are never started.
        if self._thread.ident is not None:
            self._thread.join(timeout=10)
        self.source.close()

    def sample(self) -> CameraSample:
        """Cumulative counters for the heartbeat."""
        cap = self.source.stats()
        vis = self.pipeline.stats()
        return CameraSample(
            camera_id=self.config.camera_id,
            online=cap.online,
            frames_read=cap.frames_read,
            frames_dropped=cap.frames_dropped,
            reconnects=cap.reconnects,
            frames_processed=vis.frames_processed,
            detector_calls=vis.detector_calls,
            inference_ms_p50=vis.inference_ms_p50,
            inference_ms_p95=vis.inference_ms_p95,
        )

    def _run(self) -> None:
        # A recorded clip plays at its own pace here, stamped with the wall clock at the moment
        # its frame is due: reading it as fast as the CPU allows would compress minutes of dwell
        # into seconds while the timestamps said otherwise. (`guanjia edge replay` is the fast,
        # simulated-time path.)
        clip_epoch: float | None = None
        try:
            while not self._stop.is_set():
                frame = self.source.read(timeout=0.5)
                if frame is None:
                    if self.source.ended:
                        log.info("camera %s: clip ended", self.config.camera_id)
                        return
                    continue
                now = frame.ts
                if not self.source.live:
                    if clip_epoch is None:
                        clip_epoch = time.time() - frame.clip_s
                    now = clip_epoch + frame.clip_s
                    if self._stop.wait(max(0.0, now - time.time())):
                        return
                for out in self.pipeline.process(frame.image, now):
                    self._node.uplink.send_event(out.event, out.snapshot)
                if self.pipeline.memory.dirty:
                    try:
                        self.pipeline.memory.save(self._memory_file)
                    except OSError as exc:  # a full disk must not stop the camera
                        log.warning("camera %s: memory not saved: %s", self.config.camera_id, exc)
        except Exception:
            self.failed = True
            # One broken camera must not take the node (and the other cameras) down; the
            # heartbeat shows it offline/stalled.
            log.exception("camera %s stopped on an error", self.config.camera_id)
        finally:
            self._flush()
            self.finished.set()

    def _flush(self) -> None:
        """The source ended or the camera stops: judge what is still open (a fall in the air)."""
        try:
            for out in self.pipeline.flush():
                self._node.uplink.send_event(out.event, out.snapshot)
        except Exception:
            log.exception("camera %s: judging its open tracks failed", self.config.camera_id)
