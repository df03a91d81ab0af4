"""Builds the periodic Heartbeat from counters: pure, with `now` passed in.

The app samples the cameras, the outbox and the host every `interval_s` seconds and hands the
samples here. Camera counters are cumulative in the pipeline; the heartbeat reports them *per
interval* (frames read/dropped and reconnects since the previous heartbeat, fps over that
span, detector duty = detector calls ÷ frames processed in that span), matching the contract
example (150 frames at 5 fps over 30 s). Inference p50/p95 are the pipeline's own recent
percentiles.
"""

from __future__ import annotations

from dataclasses import dataclass

from contract import CameraHealth, Heartbeat, ModelRef
from edge.outbox import OutboxStats
from edge.system_health import SystemHealth


@dataclass(frozen=True)
class CameraSample:
    """Cumulative counters of one camera pipeline at one instant."""

    camera_id: str
    online: bool
    frames_read: int
    frames_dropped: int
    reconnects: int
    frames_processed: int
    detector_calls: int
    inference_ms_p50: float | None = None
    inference_ms_p95: float | None = None


class HeartbeatBuilder:
    """Remembers the previous sample per camera to turn cumulative counters into rates."""

    def __init__(
        self, *, site_id: str, device_id: str, software_version: str, started_at: float
    ) -> None:
        self.site_id = site_id
        self.device_id = device_id
        self.software_version = software_version
        self.started_at = started_at
        self._previous: dict[str, tuple[float, CameraSample]] = {}

    def build(
        self,
        now: float,
        *,
        interval_s: float,
        cameras: list[CameraSample],
        outbox: OutboxStats,
        system: SystemHealth,
        model: ModelRef | None,
        config_version: str | None,
    ) -> Heartbeat:
        """The heartbeat for `now`; updates the per-camera baselines."""
        health = [self._camera(now, sample) for sample in cameras]
        return Heartbeat(
            ts=now,
            site_id=self.site_id,
            device_id=self.device_id,
            interval_s=interval_s,
            uptime_s=max(0.0, now - self.started_at),
            software_version=self.software_version,
            cameras=health,
            outbox_depth=outbox.depth,
            outbox_dropped=outbox.dropped,
            cpu_load_1m=system.cpu_load_1m,
            soc_temp_c=system.soc_temp_c,
            disk_free_mb=system.disk_free_mb,
            model=model,
            config_version=config_version,
        )

    def _camera(self, now: float, sample: CameraSample) -> CameraHealth:
        zero = CameraSample(sample.camera_id, sample.online, 0, 0, 0, 0, 0)
        since, before = self._previous.get(sample.camera_id, (self.started_at, zero))
        if _went_backwards(before, sample):
            # The pipeline was rebuilt (a config command): its counters restarted from zero.
            before = zero
        self._previous[sample.camera_id] = (now, sample)
        span = now - since
        read = sample.frames_read - before.frames_read
        processed = sample.frames_processed - before.frames_processed
        calls = sample.detector_calls - before.detector_calls
        return CameraHealth(
            camera_id=sample.camera_id,
            online=sample.online,
            fps=read / span if span > 0 else 0.0,
            frames_read=read,
            frames_dropped=sample.frames_dropped - before.frames_dropped,
            reconnects=sample.reconnects - before.reconnects,
            inference_ms_p50=sample.inference_ms_p50,
            inference_ms_p95=sample.inference_ms_p95,
            detector_duty=min(1.0, calls / processed) if processed > 0 else 0.0,
        )


def _went_backwards(before: CameraSample, now: CameraSample) -> bool:
    return (
        now.frames_read < before.frames_read
        or now.frames_dropped < before.frames_dropped
        or now.reconnects < before.reconnects
        or now.frames_processed < before.frames_processed
        or now.detector_calls < before.detector_calls
    )
