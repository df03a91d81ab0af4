"""Heartbeat maths (pure, table-driven) and host readings from real sysfs-shaped files."""

from __future__ import annotations

from pathlib import Path

import pytest

import contract as c
from edge.heartbeat import CameraSample, HeartbeatBuilder
from edge.outbox import OutboxStats
from edge.system_health import SystemHealth, disk_free_mb, read_system_health, soc_temp_c

T0 = 1_795_300_000.0
SYSTEM = SystemHealth(cpu_load_1m=0.5, soc_temp_c=51.2, disk_free_mb=1024.0)


def sample(
    read: int, dropped: int = 0, processed: int | None = None, calls: int = 0, reconnects: int = 0
) -> CameraSample:
    return CameraSample(
        camera_id="cam-1",
        online=True,
        frames_read=read,
        frames_dropped=dropped,
        reconnects=reconnects,
        frames_processed=read if processed is None else processed,
        detector_calls=calls,
        inference_ms_p50=30.0,
        inference_ms_p95=45.0,
    )


def build(builder: HeartbeatBuilder, now: float, cam: CameraSample) -> c.CameraHealth:
    beat = builder.build(
        now,
        interval_s=30,
        cameras=[cam],
        outbox=OutboxStats(depth=7, bytes=700, dropped=2),
        system=SYSTEM,
        model=c.ModelRef(name="yolox_nano", version="1"),
        config_version="v9",
    )
    assert beat.outbox_depth == 7
    assert beat.outbox_dropped == 2
    assert beat.soc_temp_c == 51.2
    assert beat.config_version == "v9"
    assert beat.uptime_s == now - T0
    return beat.cameras[0]


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        # 150 frames in 30 s = 5 fps; 45 of 150 processed frames ran the detector
        (sample(150, 3, calls=45), sample(300, 5, calls=90), (5.0, 150, 2, 0.3)),
        # nothing new: 0 fps, duty 0, not a division by zero
        (sample(150, calls=45), sample(150, calls=45), (0.0, 0, 0, 0.0)),
        # counters went backwards (pipeline rebuilt by a config command): count from zero
        (sample(300, 9, calls=90), sample(60, 1, calls=6), (2.0, 60, 1, 0.1)),
    ],
)
def test_heartbeat_reports_per_interval_rates(
    first: CameraSample, second: CameraSample, expected: tuple[float, int, int, float]
) -> None:
    fps, read, dropped, duty = expected
    builder = HeartbeatBuilder(site_id="s", device_id="d", software_version="0.1.0", started_at=T0)
    build(builder, T0 + 30, first)
    health = build(builder, T0 + 60, second)
    assert health.fps == pytest.approx(fps)
    assert health.frames_read == read
    assert health.frames_dropped == dropped
    assert health.detector_duty == pytest.approx(duty)
    assert health.inference_ms_p95 == 45.0


def test_first_heartbeat_counts_since_start() -> None:
    builder = HeartbeatBuilder(site_id="s", device_id="d", software_version="0.1.0", started_at=T0)
    health = build(builder, T0 + 10, sample(50, reconnects=1, calls=5))
    assert health.fps == pytest.approx(5.0)
    assert health.reconnects == 1
    assert health.detector_duty == pytest.approx(0.1)


def test_soc_temperature_prefers_the_cpu_zone(tmp_path: Path) -> None:
    for name, kind, milli in [
        ("thermal_zone0", "gpu-thermal", "40000"),
        ("thermal_zone1", "cpu-thermal", "58432"),
    ]:
        zone = tmp_path / name
        zone.mkdir()
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(milli + "\n")
    assert soc_temp_c(tmp_path) == pytest.approx(58.432)


def test_soc_temperature_absent_or_garbage_is_none(tmp_path: Path) -> None:
    assert soc_temp_c(tmp_path) is None
    zone = tmp_path / "thermal_zone0"
    zone.mkdir()
    (zone / "temp").write_text("hot\n")
    assert soc_temp_c(tmp_path) is None


def test_disk_free_uses_nearest_existing_parent(tmp_path: Path) -> None:
    free = disk_free_mb(tmp_path / "not" / "yet" / "created")
    assert free is not None
    assert free > 0
    health = read_system_health(tmp_path, thermal_root=tmp_path)
    assert health.disk_free_mb is not None
    assert health.cpu_load_1m is not None  # Linux always has a load average
