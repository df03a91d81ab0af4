"""The one result format every benchmark prints, and the reader `benchmarks.report` uses.

A benchmark prints whatever human lines it likes, plus one line per headline figure:

    RESULT {"benchmark": "uplink_throughput", "name": "...", "figure": 2950.0, ...}

``RESULT `` followed by a JSON object with exactly the fields of `BenchResult` (unknown
fields are refused, so a typo fails the report instead of vanishing). Any program that prints
such lines plugs into the report, whatever it is written in; `emit` is the Python way to do it.

The figure is what was measured; the limit is what it is divided by, *measured in the same
run* (a bare client, the raw model, the disk's fsync) or, where no such measurement exists, a
stated budget (`limit_kind` says which). `ratio` is figure ÷ limit when higher is better and
limit ÷ figure when lower is better, so 1.0 always means "at the limit".
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from benchmarks.support.machine import loadavg, machine, utc_now

PREFIX = "RESULT "


class BenchResult(BaseModel):
    """One headline figure of one benchmark run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    benchmark: str = Field(description="Module name under benchmarks/, e.g. uplink_throughput.")
    name: str = Field(description="What the figure is, e.g. 'events/s, 8 camera threads'.")
    figure: float = Field(description="The measured value (median of the rounds).")
    unit: str = Field(description="Unit of `figure` and `limit`, e.g. 'events/s', 'MB'.")
    better: Literal["higher", "lower"] = Field(
        default="higher", description="Whether a larger figure is better."
    )
    limit: float | None = Field(description="What the figure is compared with (same unit).")
    limit_name: str = Field(description="What the limit is, e.g. 'bare paho QoS 1 + e2e acks'.")
    limit_kind: Literal["measured", "budget"] = Field(
        default="measured", description="Measured in the same run, or a stated budget."
    )
    ratio: float | None = Field(description="1.0 = at the limit (see module docstring).")
    target: str | None = Field(default=None, description="The ratio or figure aimed for.")
    cpu_us_per_item: float | None = Field(
        default=None, description="CPU µs per message/frame of the measured path, if known."
    )
    limit_cpu_us_per_item: float | None = Field(
        default=None, description="CPU µs per item of the limit's path, if known."
    )
    rounds: int = Field(ge=1, description="Interleaved rounds the median is taken over.")
    size: str = Field(description="Workload size, e.g. '5000 events x 8 threads'.")
    loadavg_start: tuple[float, float, float] = Field(description="1/5/15 min load at start.")
    loadavg_end: tuple[float, float, float] = Field(description="1/5/15 min load at the end.")
    date: str = Field(description="UTC, ISO 8601, when the run ended.")
    machine: str = Field(description="CPU model and cores.")
    notes: str = Field(default="", description="What limits the figure, caveats.")


def ratio(figure: float, limit: float | None, better: Literal["higher", "lower"]) -> float | None:
    """figure ÷ limit (higher is better) or limit ÷ figure (lower is better); None without one."""
    if limit is None or limit == 0 or figure == 0:
        return None
    return figure / limit if better == "higher" else limit / figure


def make(
    *,
    benchmark: str,
    name: str,
    figure: float,
    unit: str,
    limit: float | None,
    limit_name: str,
    rounds: int,
    size: str,
    loadavg_start: tuple[float, float, float],
    better: Literal["higher", "lower"] = "higher",
    limit_kind: Literal["measured", "budget"] = "measured",
    target: str | None = None,
    cpu_us_per_item: float | None = None,
    limit_cpu_us_per_item: float | None = None,
    notes: str = "",
) -> BenchResult:
    """A result stamped with this machine, the load now and the date."""
    return BenchResult(
        benchmark=benchmark,
        name=name,
        figure=figure,
        unit=unit,
        better=better,
        limit=limit,
        limit_name=limit_name,
        limit_kind=limit_kind,
        ratio=ratio(figure, limit, better),
        target=target,
        cpu_us_per_item=cpu_us_per_item,
        limit_cpu_us_per_item=limit_cpu_us_per_item,
        rounds=rounds,
        size=size,
        loadavg_start=loadavg_start,
        loadavg_end=loadavg(),
        date=utc_now(),
        machine=machine().describe(),
        notes=notes,
    )


def emit(result: BenchResult) -> None:
    """Print the result line (flushed: the report reads it from a pipe)."""
    print(PREFIX + result.model_dump_json(), flush=True)


def parse(lines: Iterable[str]) -> list[BenchResult]:
    """The results among a benchmark's output lines (other lines are ignored)."""
    out = []
    for line in lines:
        if line.startswith(PREFIX):
            out.append(BenchResult.model_validate(json.loads(line[len(PREFIX) :])))
    return out
