"""Every benchmark runs at its smallest size and prints well-formed results (not timings).

Each module is run as the report runs it (`benchmarks.report.run_one`, its own process, the
``--smoke`` size), with the model and photos found by the suite's fixtures. What is checked
is the shape of what it claims: a figure, a limit of the same unit with its name, the ratio
being the figure over that limit, the load and rounds noted — never how fast anything was.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from benchmarks.report import BENCHMARKS, Benchmark, run_one
from benchmarks.support.result import BenchResult
from tests.conftest import missing

EDGE = {"edge_streams", "edge_pipeline_overhead", "edge_motion_gate", "edge_facade"}
BROKER = {
    "uplink_throughput",
    "gateway_rss",
    "telemetry_ingest",
    "gateway_ingest",
    "gateway_latency",
}


def _check(result: BenchResult, bench: Benchmark) -> None:
    assert result.benchmark == bench.name
    assert result.name
    assert result.figure > 0
    assert result.rounds >= 1
    assert result.limit_name
    assert result.limit is not None
    assert result.limit > 0
    expected = result.figure / result.limit
    if result.better == "lower":
        expected = 1 / expected
    assert result.ratio == pytest.approx(expected)
    assert all(x >= 0 for x in (*result.loadavg_start, *result.loadavg_end))
    assert result.machine
    assert result.date.endswith("Z")


@pytest.mark.parametrize("bench", BENCHMARKS, ids=lambda b: b.name)
def test_benchmark_smallest_run_emits_well_formed_results(
    bench: Benchmark, request: pytest.FixtureRequest
) -> None:
    env = dict(os.environ)
    if bench.name in EDGE:
        env["GUANJIA_MODEL_DIR"] = str(request.getfixturevalue("model_dir"))
        env["GUANJIA_TESTDATA_DIR"] = str(request.getfixturevalue("testdata_images"))
    if bench.name in BROKER:
        request.getfixturevalue("mosquitto_available")
    if bench.name == "telemetry_ingest" and shutil.which("victoria-metrics") is None:
        missing("victoria-metrics")
    if bench.name == "telemetry_cpu" and shutil.which("valgrind") is None:
        missing("valgrind")
    # A generous bound: this checks what is printed, not how fast (the machine may be busy).
    outcome = run_one(bench, "smoke", echo=False, env=env, timeout_s=300)
    assert outcome.error is None, outcome.error
    assert outcome.results
    for result in outcome.results:
        _check(result, bench)


def test_every_benchmark_module_is_in_the_report() -> None:
    modules = {
        p.stem
        for p in Path(__file__).resolve().parents[2].joinpath("benchmarks").glob("*.py")
        if p.stem not in {"__init__", "report", "rss_reference"}
    }
    assert modules == {b.name for b in BENCHMARKS}
