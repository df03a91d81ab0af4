"""Probation's regression rule, table-driven."""

from __future__ import annotations

import pytest

from edge.model_update.probation import HealthSample, ProbationRules, regression

BASE = HealthSample(fps=5.0, inference_ms=40.0)
RULES = ProbationRules(fps_floor=0.5, inference_factor=3.0)


@pytest.mark.parametrize(
    ("baseline", "now", "words"),
    [
        (BASE, HealthSample(5.0, 45.0), None),
        (BASE, HealthSample(2.6, 40.0), None),
        (BASE, HealthSample(2.4, 40.0), "fps collapsed: 2.4 from 5.0"),
        (BASE, HealthSample(5.0, 119.0), None),
        (BASE, HealthSample(5.0, 121.0), "inference time 121 ms is over 3x the 40 ms"),
        (BASE, HealthSample(5.0, 40.0, errors=1), "pipeline errors after the switch (1)"),
        (None, HealthSample(0.1, 900.0), None),  # no baseline (no cameras before): no judge
        (None, HealthSample(None, None, errors=2), "pipeline errors"),
        (BASE, None, None),  # no cameras now: nothing to judge
        (HealthSample(None, None), HealthSample(0.0, 500.0), None),
    ],
)
def test_regression(
    baseline: HealthSample | None, now: HealthSample | None, words: str | None
) -> None:
    found = regression(baseline, now, RULES)
    if words is None:
        assert found is None
    else:
        assert found is not None
        assert words in found
