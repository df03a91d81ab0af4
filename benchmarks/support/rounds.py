"""Interleaved rounds: every contender measured once per round, round after round.

On a shared machine the load comes and goes; measuring A three times and then B three times
lets one of them take the quiet minute. Round-robin spreads the noise over both, and the
median of the rounds is what a report prints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from benchmarks.support.stats import median


@dataclass
class Rounds:
    """Per-contender samples of one or more named values, collected round by round."""

    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def add(self, contender: str, values: Mapping[str, float]) -> None:
        """Record one round's values of `contender`."""
        slot = self.samples.setdefault(contender, {})
        for key, value in values.items():
            slot.setdefault(key, []).append(float(value))

    def median(self, contender: str, key: str) -> float:
        """The median over the rounds of one value."""
        return median(self.samples[contender][key])

    def all(self, contender: str, key: str) -> list[float]:
        """Every round's value, in round order."""
        return list(self.samples[contender][key])


def interleave(
    rounds: int, contenders: Mapping[str, Callable[[int], Mapping[str, float]]]
) -> Rounds:
    """Run each contender once per round, in the given order, `rounds` times.

    A contender is called with the round number and returns the values it measured.
    """
    if rounds < 1:
        raise ValueError("at least one round")
    out = Rounds()
    for number in range(rounds):
        for name, run in contenders.items():
            out.add(name, run(number))
    return out
