"""What a figure was measured on and under: CPU model, cores, load average, date, CPU time."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class Machine:
    """The box a report was produced on."""

    cpu_model: str
    cores: int
    python: str

    def describe(self) -> str:
        """One line for a report header."""
        return f"{self.cpu_model}, {self.cores} cores, Python {self.python}"


def machine() -> Machine:
    """This machine's CPU model (from /proc/cpuinfo where there is one) and core count."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return Machine(cpu_model=model, cores=os.cpu_count() or 1, python=platform.python_version())


def loadavg() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages (other work on a shared box skews figures)."""
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system, all threads) used so far by process `pid` (None: this one).

    Another process is read from /proc/<pid>/stat, so a benchmark can charge a child (a real
    `guanjia … run`) for its own work and nothing else.
    """
    if pid is None or pid == os.getpid():
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the ")" ending the command name: state is field 3, utime 14, stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / _TICKS
