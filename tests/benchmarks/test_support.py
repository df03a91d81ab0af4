"""The benchmarks' shared pieces: the one percentile, interleaving, the result line, the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from benchmarks.report import previous, render
from benchmarks.support.result import PREFIX, BenchResult, emit, make, parse
from benchmarks.support.rounds import interleave
from benchmarks.support.stats import median, percentile


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 99, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),  # even count: mean of the middle two
        ([1.0, 2.0, 3.0, 4.0], 0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
        ([4.0, 1.0, 3.0, 2.0], 25, 1.75),  # unsorted input, linear interpolation
        (list(map(float, range(101))), 99, 99.0),
    ],
)
def test_percentile_is_linear_between_ranks(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_refuses_nothing_and_out_of_range_q() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], 0.99 * 1000)
    assert median([3.0, 1.0, 2.0]) == 2.0


def test_interleave_runs_contenders_round_robin() -> None:
    calls: list[str] = []

    def contender(name: str, value: float):
        def run(number: int) -> dict[str, float]:
            calls.append(f"{name}{number}")
            return {"v": value + number}

        return run

    rounds = interleave(3, {"a": contender("a", 10.0), "b": contender("b", 20.0)})
    assert calls == ["a0", "b0", "a1", "b1", "a2", "b2"]
    assert rounds.all("a", "v") == [10.0, 11.0, 12.0]
    assert rounds.median("b", "v") == 21.0


def _result(
    benchmark: str = "uplink_throughput", figure: float = 50.0, better: str = "higher"
) -> BenchResult:
    return make(
        benchmark=benchmark,
        better="lower" if better == "lower" else "higher",
        name="events/s",
        figure=figure,
        unit="events/s",
        limit=200.0,
        limit_name="bare client",
        rounds=3,
        size="10 events",
        loadavg_start=(0.1, 0.2, 0.3),
    )


def test_result_line_round_trips_and_refuses_unknown_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    emit(_result())
    out = capsys.readouterr().out
    (parsed,) = parse(["a human line", *out.splitlines()])
    assert parsed.figure == 50.0
    assert parsed.limit == 200.0
    assert parsed.ratio == pytest.approx(0.25)  # higher is better: figure / limit
    assert _result(figure=400.0, better="lower").ratio == pytest.approx(0.5)  # limit / figure
    bad = json.loads(out[len(PREFIX) :])
    bad["speed"] = "fast"
    with pytest.raises(ValidationError):
        parse([PREFIX + json.dumps(bad)])


def test_report_keeps_other_benchmarks_rows_for_a_subset(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    first = [_result("uplink_throughput", 50.0), _result("edge_streams", 7.0)]
    out.write_text(render(first, {}, command="x", load_start=(0.0, 0.0, 0.0)))
    assert [r.figure for r in previous(out)] == [50.0, 7.0]
    text = render(
        [_result("edge_streams", 9.0)],
        {"gateway_rss": "timed out after 36 s", "gateway_ingest": "usage: a | b\nerror"},
        command="x",
        load_start=(0.0, 0.0, 0.0),
    )
    assert "| gateway_rss | FAILED: timed out after 36 s |" in text
    assert "| gateway_ingest | FAILED: usage: a \\| b error |" in text  # one table row
    assert "**0.045**" in text  # 9 / 200
    assert previous(tmp_path / "missing.md") == []
