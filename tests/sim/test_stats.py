"""Percentiles and the report's verdict (pure)."""

from __future__ import annotations

import pytest

from guanjia.sim.stats import KindCounts, Report, latency, percentile


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 50, None),
        ([7.0], 99, 7.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 75, 3.0),
        ([4.0, 1.0, 3.0, 2.0], 100, 4.0),
        ([float(i) for i in range(1, 101)], 95, 95.0),
        ([float(i) for i in range(1, 101)], 99, 99.0),
        ([5.0, 5.0, 100.0], 50, 5.0),
    ],
)
def test_percentile_nearest_rank(values: list[float], q: float, expected: float | None) -> None:
    assert percentile(values, q) == expected


def test_latency_is_in_milliseconds() -> None:
    lat = latency([0.010, 0.020, 0.030, 1.0])
    assert (lat.count, lat.p50_ms, lat.max_ms) == (4, 20.0, 1000.0)
    assert latency([]).p95_ms is None


@pytest.mark.parametrize(("pending", "complete"), [(0, True), (1, False)])
def test_report_is_complete_only_when_nothing_awaits_an_ack(pending: int, complete: bool) -> None:
    report = Report(
        site_id="s",
        devices=1,
        duration_s=1,
        wall_s=1,
        planned={},
        kinds={"event": KindCounts(sent=2, gateway_acked=2 - pending, pending=pending)},
        broker_latency=latency([]),
        gateway_latency=latency([]),
        events_per_s=0,
        max_lag_s=0,
    )
    assert report.complete is complete
