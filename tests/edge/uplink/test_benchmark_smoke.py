"""The uplink benchmark runs end to end on tiny input and reports sane figures."""

from __future__ import annotations

import pytest

from benchmarks.uplink_throughput import run

pytestmark = pytest.mark.mqtt


def test_uplink_benchmark_smoke(mosquitto_available: None) -> None:
    result = run(events=50, inflight=8, synchronous="normal", repeat=1)
    assert result["events"] == 50
    assert result["bare_paho_per_s"] > 0
    assert result["uplink_per_s"] > 0
    assert result["ratio"] == pytest.approx(result["uplink_per_s"] / result["bare_paho_per_s"])
    assert 0 < result["write_p50_ms"] <= result["write_p99_ms"]
