"""The uplink benchmark runs end to end on tiny input: every event acked by the gateway stand-in."""

from __future__ import annotations

import pytest

from benchmarks.uplink_throughput import run

pytestmark = pytest.mark.mqtt


def test_uplink_benchmark_smoke(mosquitto_available: None) -> None:
    # `run` raises unless the stand-in committed (and acked) every event of every uplink
    # round: an uplink that lost or never re-sent one would not finish, one that sent
    # others would not match.
    results = run(events=40, inflight=8, synchronous="normal", repeat=1, cameras=4)
    assert [r.name for r in results] == [
        "outbox + e2e delivery, 4 camera threads (group commit)",
        "outbox + e2e delivery, 1 camera thread",
    ]
    for result in results:
        assert result.figure > 0
        assert result.limit is not None
        assert result.limit > 0
        assert result.ratio == pytest.approx(result.figure / result.limit)
        assert result.cpu_us_per_item is not None
        assert result.cpu_us_per_item > 0
