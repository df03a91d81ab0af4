"""The uplink benchmark runs end to end on tiny input: every event acked by the gateway stand-in."""

from __future__ import annotations

import pytest

from benchmarks.uplink_throughput import run

pytestmark = pytest.mark.mqtt


def test_uplink_benchmark_smoke(mosquitto_available: None) -> None:
    result = run(events=50, inflight=8, synchronous="normal", repeat=1)
    assert result["events"] == 50
    # The uplink's rounds count only once the gateway committed (and acked) every event: an
    # uplink that lost or never re-sent one would not finish, one that sent others would
    # show here.
    assert result["uplink_committed"] == 50
    assert result["limit_e2e_per_s"] > 0
    assert result["bare_puback_per_s"] > 0
    assert result["uplink_per_s"] > 0
    assert 0 < result["write_p50_ms"] <= result["write_p99_ms"]
