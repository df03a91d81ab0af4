"""Pure: is a freshly switched model healthy enough, compared with the one before it?

A regression is the pipeline erroring, frames per second collapsing (below `fps_floor` of
the baseline) or inference time growing past `inference_factor` times the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HealthSample:
    """The cameras' health at one moment (None: no camera measured it)."""

    fps: float | None
    inference_ms: float | None
    errors: int = 0


@dataclass(frozen=True)
class ProbationRules:
    """When a switch counts as a regression."""

    fps_floor: float = 0.5
    inference_factor: float = 3.0


def regression(
    baseline: HealthSample | None, now: HealthSample | None, rules: ProbationRules
) -> str | None:
    """Why `now` is a regression from `baseline`, or None when it is not."""
    if now is None:
        return None
    if now.errors:
        return f"pipeline errors after the switch ({now.errors})"
    if baseline is None:
        return None
    if baseline.fps and now.fps is not None and now.fps < baseline.fps * rules.fps_floor:
        return f"fps collapsed: {now.fps:.1f} from {baseline.fps:.1f}"
    if (
        baseline.inference_ms
        and now.inference_ms is not None
        and now.inference_ms > baseline.inference_ms * rules.inference_factor
    ):
        return (
            f"inference time {now.inference_ms:.0f} ms is over "
            f"{rules.inference_factor:g}x the {baseline.inference_ms:.0f} ms before"
        )
    return None
