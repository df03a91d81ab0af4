"""A real VictoriaMetrics process (Debian's `victoria-metrics`) for tests and benchmarks: it
speaks the InfluxDB v2 write API (`/api/v2/write`) and exports what it stored."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tests.support.broker import free_port


def victoria_binary() -> str | None:
    """Path of the victoria-metrics binary, if installed."""
    return shutil.which("victoria-metrics")


@dataclass
class VictoriaMetrics:
    """One server on a free port, data under `workdir`; stop/start keep the data."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        binary = victoria_binary()
        assert binary is not None
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / "vm.log").open("ab") as log:
            self.process = self._spawn(binary, log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"victoria-metrics did not start: {self.log_tail()}")

    def _spawn(self, binary: str, log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                binary,
                f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.workdir / 'data'}",
                "-retentionPeriod=1y",
                # Points written a moment ago must be searchable at once.
                "-search.latencyOffset=0s",
                "-search.disableCache",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log_tail(self, lines: int = 20) -> str:
        path = self.workdir / "vm.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def export(self, match: str = '{__name__=~"telemetry_.*"}') -> list[dict[str, Any]]:
        """Every stored series matching `match` (JSON lines of /api/v1/export)."""
        urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10).close()
        query = urllib.parse.urlencode({"match[]": match, "start": "0"})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=30) as resp:
            body = resp.read().decode()
        return [json.loads(row) for row in body.splitlines() if row.strip()]

    def count(self, match: str = '{__name__=~"telemetry_.*"}') -> int:
        """Stored samples matching `match`."""
        return sum(len(row["values"]) for row in self.export(match))
