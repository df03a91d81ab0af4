"""The one place that wires an edge node process together.

    NODE.yaml ─▶ NodeConfig
                  ├─ Outbox (SQLite WAL) ◀─ Uplink ─▶ MqttLink (paho, MQTT 5) ─▶ broker
                  │        ▲ deleted when the gateway's Ack (…/ack) names a row
                  ├─ action sinks (log / MQTT / HTTP), fired by the rules on the spot
                  ├─ per camera: FrameSource ─▶ CameraPipeline ─▶ Uplink.send_event
                  ├─ heartbeat thread: HeartbeatBuilder + system health ─▶ Uplink (QoS 0)
                  ├─ CommandHandler ◀─ cmd/+ (ping, config, actuate, model_update)
                  └─ ModelUpdater (with model_updates): data_dir/models, probation thread

Threads: one per camera (capture + vision; they share nothing but the uplink), the heartbeat
thread, and the uplink's publisher and command workers; paho runs its own network thread.
SIGTERM/SIGINT set one stop event: cameras stop, sent messages get a moment to be acked by the
gateway, a retained ``offline`` goes out, and the outbox is closed. Whatever was not acked
stays in the outbox for the next start.

A ``config`` command replaces the `RuntimeConfig` (config version, heartbeat interval,
cameras) as a whole: every camera is loaded and opened first, and only if all of that works are
the old camera workers swapped for the new ones; otherwise the command is rejected and nothing
changed. The applied config is written atomically to ``data_dir/runtime_config.json`` and wins
over the file's runtime part on restart, until the file's own `config_version` changes (an
operator edited NODE.yaml on purpose).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from pydantic import JsonValue

from contract import Manifest, ModelRef
from edge.camera_config import CameraConfigError
from edge.camera_worker import CameraWorker, resolve_cameras
from edge.commands import CommandHandler, ConfigRejectedError
from edge.heartbeat import HeartbeatBuilder
from edge.model_update.probation import HealthSample
from edge.model_update.reporting import UpdateReporting
from edge.model_update.state import ModelSlot
from edge.model_update.updater import ModelUpdater
from edge.node_config import CameraRef, ModelUpdateSettings, NodeConfig, RuntimeConfig
from edge.node_links import MissingTokenError, action_sinks, link_options
from edge.outbox import Outbox
from edge.runtime_store import load_runtime, save_runtime
from edge.system_health import read_system_health
from edge.uplink import AckPolicy, Uplink

log = logging.getLogger(__name__)


class NodeStartError(RuntimeError):
    """The node cannot start: bad camera, missing model, unreadable secret, unusable outbox."""


# -- the node --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    """How `EdgeNode.run` ends."""

    exit_when_clips_end: bool = False
    """Exit once every camera is a recorded clip that has ended and the outbox is empty."""
    drain_timeout_s: float = 30.0
    """With `exit_when_clips_end`: how long to wait for the outbox to drain."""


class EdgeNode:
    """Everything one node process runs, built from a NodeConfig."""

    def __init__(
        self, config: NodeConfig, *, config_dir: Path, software_version: str = "0.1.0"
    ) -> None:
        self.config = config
        self.config_dir = config_dir
        self.software_version = software_version
        self.started_at = time.time()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        try:
            password = config.mqtt.password()
        except ValueError as exc:
            raise NodeStartError(str(exc)) from exc
        self.outbox = Outbox(
            config.outbox.path,
            max_rows=config.outbox.max_rows,
            max_bytes=int(config.outbox.max_mb * 1024 * 1024),
            synchronous=config.outbox.synchronous,
        )
        options = link_options(config, password=password, software_version=software_version)
        self.uplink = Uplink(
            options,
            self.outbox,
            acks=AckPolicy(
                timeout_s=config.outbox.ack_timeout_s,
                max_timeout_s=config.outbox.ack_timeout_max_s,
                window=config.outbox.awaiting_ack_max,
            ),
        )
        try:
            self.actions, self._http_sinks = action_sinks(config, self.uplink.link)
        except MissingTokenError as exc:
            raise NodeStartError(str(exc)) from exc
        self.runtime = load_runtime(config)
        self.manifest: Manifest | None = None
        self.model_dir: Path | None = None
        self.cameras: list[CameraWorker] = []
        self.heartbeats = HeartbeatBuilder(
            site_id=config.site_id,
            device_id=config.device_id,
            software_version=software_version,
            started_at=self.started_at,
        )
        self._health_mark: tuple[float, int] | None = None
        self.reporting: UpdateReporting | None = None
        self.updater: ModelUpdater | None = None
        if config.model_updates is not None:
            self.reporting = UpdateReporting(config.site_id, config.device_id, self.uplink)
            self.updater = self._build_updater(config.model_updates, self.reporting)
        self.commands = CommandHandler(
            site_id=config.site_id,
            device_id=config.device_id,
            settings=config.commands,
            results=self.uplink,
            actions=self.actions,
            apply_config=self.apply_runtime,
            ping_detail=self._ping_detail,
            model_updates=self.reporting,
        )
        self.uplink.set_command_handler(
            lambda topic, payload: self.commands.handle(topic, payload, time.time())
        )

    # -- building ------------------------------------------------------------------------

    def _build_updater(
        self, settings: ModelUpdateSettings, reporting: UpdateReporting
    ) -> ModelUpdater:
        from edge.model_update.probation import ProbationRules
        from guanjia.artifacts import parse_public_key

        updater = ModelUpdater(
            self.config.data_dir / "models",
            [parse_public_key(k) for k in settings.trusted_keys],
            software_version=self.software_version,
            report=reporting.publish,
            switch=self._switch_model,
            health=self._camera_health,
            rules=ProbationRules(settings.fps_floor, settings.inference_factor),
            download_timeout_s=settings.download_timeout_s,
            max_model_bytes=int(settings.max_model_mb * 1024 * 1024),
        )
        reporting.updater = updater
        return updater

    def _switch_model(self, slot: ModelSlot | None) -> None:
        """Run `slot` (None: NODE.yaml's model): reopen every camera with it, or raise.

        The updater has already recorded `slot` as active, so `_load_model` finds it."""
        with self._lock:
            self.manifest, self.model_dir = None, None
            runtime = self.runtime
        if slot is None and self.config.model is None:
            return  # a node without cameras or a model of its own: nothing to reload
        manifest, _ = self._load_model()
        log.info("switching to model %s %s", manifest.name, manifest.version)
        workers = self._open_cameras(runtime.cameras)
        with self._lock:
            old, self.cameras = self.cameras, workers
        for worker in old:
            worker.stop()
        if not self._stop.is_set():
            for worker in workers:
                worker.start()

    def _camera_health(self) -> HealthSample | None:
        with self._lock:
            cameras = list(self.cameras)
        if not cameras:
            return None
        samples = [worker.sample() for worker in cameras]
        now, frames = time.monotonic(), sum(s.frames_processed for s in samples)
        last, self._health_mark = self._health_mark, (now, frames)
        window = None
        if last is not None and now > last[0] and frames >= last[1]:
            window = (frames - last[1]) / (now - last[0])
        inference = [s.inference_ms_p50 for s in samples if s.inference_ms_p50 is not None]
        errors = sum(1 for worker in cameras if worker.failed)
        return HealthSample(
            fps=window, inference_ms=max(inference) if inference else None, errors=errors
        )

    def _load_model(self) -> tuple[Manifest, Path]:
        from edge.detector import load_manifest
        from edge.model_dir import resolve_model_dir

        if self.manifest is not None and self.model_dir is not None:
            return self.manifest, self.model_dir
        installed = None if self.updater is None else self.updater.active_model()
        if installed is not None:
            self.manifest, self.model_dir = installed
            return installed
        if self.config.model is None:
            raise ValueError("cameras need a model section in the node config")
        manifest = load_manifest(self.config.model.manifest)
        model_dir = resolve_model_dir(self.config.model.dir, weights=manifest.file)
        self.manifest, self.model_dir = manifest, model_dir
        return manifest, model_dir

    def _open_cameras(self, refs: list[CameraRef]) -> list[CameraWorker]:
        """Load and open every camera, or close what was opened and raise."""
        configs = resolve_cameras(refs, self.config_dir)
        if not configs:
            return []
        manifest, model_dir = self._load_model()
        workers: list[CameraWorker] = []
        try:
            for camera in configs:
                workers.append(CameraWorker(camera, manifest, model_dir, self))
        except Exception:
            for worker in workers:
                worker.source.close()
            raise
        return workers

    # -- runtime config ------------------------------------------------------------------

    def apply_runtime(self, runtime: RuntimeConfig) -> None:
        """Replace config version, heartbeat interval and cameras as a whole, or change nothing."""
        try:
            workers = self._open_cameras(runtime.cameras)
        except (CameraConfigError, ValueError, OSError) as exc:
            raise ConfigRejectedError(str(exc)) from exc
        with self._lock:
            old, self.cameras = self.cameras, workers
            self.runtime = runtime
        for worker in old:
            worker.stop()
        if not self._stop.is_set():
            for worker in workers:
                worker.start()
        save_runtime(self.config, runtime)
        log.info("applied config %s (%d cameras)", runtime.config_version, len(runtime.cameras))

    # -- health --------------------------------------------------------------------------

    def _ping_detail(self) -> dict[str, JsonValue]:
        stats = self.uplink.stats()
        return {
            "uptime_s": round(time.time() - self.started_at, 3),
            "outbox_depth": stats.outbox.depth,
            "outbox_dropped": stats.outbox.dropped,
            "awaiting_ack": stats.awaiting_ack,
            "config_version": self.runtime.config_version,
            "cameras": [worker.config.camera_id for worker in self.cameras],
        }

    def heartbeat_once(self, now: float) -> bool:
        """Build and send one heartbeat; False if the broker is unreachable right now."""
        with self._lock:
            cameras = list(self.cameras)
            runtime = self.runtime
        model: ModelRef | None = None if self.manifest is None else self.manifest.ref
        if model is None and self.updater is not None:
            installed = self.updater.active_model()
            model = None if installed is None else installed[0].ref
        heartbeat = self.heartbeats.build(
            now,
            interval_s=runtime.heartbeat_interval_s,
            cameras=[worker.sample() for worker in cameras],
            outbox=self.outbox.stats(),
            system=read_system_health(self.config.outbox.path.parent),
            model=model,
            config_version=runtime.config_version,
        )
        return self.uplink.send_heartbeat(heartbeat)

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.runtime.heartbeat_interval_s):
            try:
                self.heartbeat_once(time.time())
            except Exception:
                log.exception("heartbeat failed")

    def _probation_loop(self) -> None:
        assert self.updater is not None
        while not self._stop.wait(1.0):
            try:
                self.updater.tick()
            except Exception:
                log.exception("probation check failed")

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Open cameras and start every thread; raise NodeStartError on a bad camera/model."""
        if self.updater is not None:
            self.updater.recover()  # before cameras: never boot a model still on probation
        try:
            self.cameras = self._open_cameras(self.runtime.cameras)
        except (CameraConfigError, ValueError, OSError) as exc:
            raise NodeStartError(str(exc)) from exc
        self.uplink.start()
        for worker in self.cameras:
            worker.start()
        threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True).start()
        if self.updater is not None:
            threading.Thread(target=self._probation_loop, name="probation", daemon=True).start()
        log.info(
            "edge node %s/%s up: %d camera(s), outbox %s (%d queued)",
            self.config.site_id,
            self.config.device_id,
            len(self.cameras),
            self.config.outbox.path,
            self.outbox.stats().depth,
        )

    def request_stop(self) -> None:
        """Ask `run` to return (signal handlers call this)."""
        self._stop.set()

    def run(self, options: RunOptions | None = None) -> int:
        """Start, block until stopped (or clips ended with `exit_when_clips_end`), shut down."""
        opts = options or RunOptions()
        self.start()
        try:
            while not self._stop.wait(0.2):
                if opts.exit_when_clips_end and self._clips_done():
                    self._drain(opts.drain_timeout_s)
                    break
        finally:
            self.shutdown()
        return 0

    def _clips_done(self) -> bool:
        with self._lock:
            cameras = list(self.cameras)
        return all(not w.live and w.finished.is_set() for w in cameras)

    def _drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.outbox.stats().depth and time.monotonic() < deadline:
            if self._stop.wait(0.1):
                return
        if self.outbox.stats().depth:
            log.warning("%d message(s) still queued at exit", self.outbox.stats().depth)

    def shutdown(self) -> None:
        """Stop cameras, give in-flight messages a moment, go offline cleanly, close the outbox."""
        self._stop.set()
        if self.updater is not None:
            self.updater.close()
        with self._lock:
            cameras, self.cameras = self.cameras, []
        for worker in cameras:
            worker.stop()
        self.uplink.stop("shutdown")
        for sink in self._http_sinks:
            sink.close()
        self.outbox.close()
        log.info("edge node stopped")


def install_signal_handlers(node: EdgeNode) -> None:
    """SIGTERM (systemd stop) and SIGINT (Ctrl-C) request a clean shutdown."""

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s: shutting down", signal.Signals(signum).name)
        node.request_stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_node(
    config_path: Path, options: RunOptions | None = None, *, software_version: str = "0.1.0"
) -> int:
    """Load NODE.yaml, build the node, run it until SIGTERM; the CLI's ``edge run``."""
    from edge.node_config import load_node_config

    config = load_node_config(config_path)
    node = EdgeNode(
        config, config_dir=config_path.resolve().parent, software_version=software_version
    )
    install_signal_handlers(node)
    return node.run(options)
