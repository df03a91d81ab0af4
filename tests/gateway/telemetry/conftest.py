"""Fixtures of the telemetry tests: a real VictoriaMetrics (InfluxDB v2 write API)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import missing
from tests.support.victoria import VictoriaMetrics, victoria_binary


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """A VictoriaMetrics server of the test's own, on a free port."""
    if victoria_binary() is None:
        missing("the victoria-metrics binary (apt-get install victoria-metrics)")
    server = VictoriaMetrics(tmp_path / "victoria")
    server.start()
    yield server
    server.stop()
