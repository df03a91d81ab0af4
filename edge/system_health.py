"""Host health for heartbeats: CPU load, SoC temperature when readable, free disk.

Reads procfs/sysfs and the filesystem only; every reading is optional because containers and
non-Pi hosts often hide them (a missing reading is ``None`` in the heartbeat, never a guess).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

THERMAL_ROOT = Path("/sys/class/thermal")

# Zone types that name the SoC/CPU on Raspberry Pi OS and common ARM/x86 kernels; the first
# zone is the fallback (on a Pi 4/5 thermal_zone0 is the SoC).
_SOC_ZONE_TYPES = ("cpu-thermal", "soc-thermal", "cpu_thermal", "soc_thermal", "x86_pkg_temp")


@dataclass(frozen=True)
class SystemHealth:
    """One reading of the host."""

    cpu_load_1m: float | None
    soc_temp_c: float | None
    disk_free_mb: float | None


def cpu_load_1m() -> float | None:
    """The 1-minute load average, or None where the OS does not expose one."""
    try:
        return float(os.getloadavg()[0])
    except OSError:
        return None


def soc_temp_c(thermal_root: Path = THERMAL_ROOT) -> float | None:
    """SoC temperature in °C from sysfs thermal zones (millidegrees), or None."""
    zones = sorted(thermal_root.glob("thermal_zone*"))
    preferred = []
    for zone in zones:
        try:
            kind = (zone / "type").read_text(encoding="ascii").strip()
        except OSError:
            continue
        if kind in _SOC_ZONE_TYPES:
            preferred.append(zone)
    for zone in [*preferred, *zones]:
        try:
            return int((zone / "temp").read_text(encoding="ascii").strip()) / 1000.0
        except (OSError, ValueError):
            continue
    return None


def disk_free_mb(path: Path) -> float | None:
    """Free space (MiB) on the filesystem holding `path` (its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free / (1024 * 1024)
    except OSError:
        return None


def read_system_health(data_dir: Path, thermal_root: Path = THERMAL_ROOT) -> SystemHealth:
    """Read everything once; `data_dir` is where the outbox lives (the disk that matters)."""
    return SystemHealth(
        cpu_load_1m=cpu_load_1m(),
        soc_temp_c=soc_temp_c(thermal_root),
        disk_free_mb=disk_free_mb(data_dir),
    )
