"""The power signature of an e-bike charger on a household or stairwell circuit (飞线充电,
indoor and flying-wire charging). Pure: a function of the circuit's recent power samples.

What a charger looks like on the circuit meter (48 V / 60 V lead-acid or lithium packs,
chargers of 1.5-5 A output):

1. a **step** up of 80-400 W over the circuit's baseline: a step, not a ramp, from a baseline
   that was steady just before (the charger starts in constant current);
2. a **plateau**: steady while in constant current (within 25 % of its level in its first
   10 minutes: a TV or a PC swings more, a fridge starts with a spike);
3. that **lasts** over 30 minutes with no gap (a kettle lasts 3, a fridge cycles on for
   10-25 minutes, a thermostat heater cycles), and
4. **tapers**: once in constant voltage the current, and the power, fall gradually; the last
   10 minutes are at most 85 % of the plateau, and no two samples fall by more than 30 % of
   the plateau (a gradual fall, not an appliance switching off);
5. at **night**: the step happened between 20:00 and 06:00 local time (charging in a
   corridor or a flat overnight is what the fire brigade warns about; daytime loads of this
   size are too many and too varied to ticket).

Look-alikes it must not fire on (tests/gateway/telemetry/test_signature.py): a kettle and a
space heater (over 400 W, and short or cycling), a fridge (cycles under 30 min and starts with
a spike), a TV (flat, no taper), a heater on its low setting switched off after an hour
(abrupt end), a phone or laptop charger (under 80 W), and a real charger's curve by day.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

MIN_STEP_W = 80.0
MAX_STEP_W = 400.0
MIN_DURATION_S = 30 * 60.0
PLATEAU_S = 10 * 60.0
TAPER_RATIO = 0.85
MAX_PLATEAU_SWING = 0.25
MAX_DROP_RATIO = 0.30
ELEVATED_RATIO = 0.2
"""Below this share of the plateau over the baseline, the charger is off (or done)."""
NIGHT_START_H = 20
NIGHT_END_H = 6
BASELINE_SAMPLES = 6


@dataclass(frozen=True)
class ChargingSignature:
    """A charger found: when its step was, its size and how far it has tapered."""

    started_at: float
    baseline_w: float
    plateau_w: float
    tail_w: float
    duration_s: float

    @property
    def reason(self) -> str:
        """One line for the ticket."""
        return (
            f"charger signature: +{self.plateau_w:.0f} W step over {self.baseline_w:.0f} W for "
            f"{self.duration_s / 60:.0f} min, tapering to {self.tail_w:.0f} W"
        )


def is_night(ts: float, utc_offset_h: float) -> bool:
    """Whether `ts` is between 20:00 and 06:00 at that UTC offset."""
    hour = ((ts / 3600.0) + utc_offset_h) % 24
    return hour >= NIGHT_START_H or hour < NIGHT_END_H


def _step_at(power: Sequence[float], i: int) -> tuple[float, float] | None:
    """(baseline, step) when a charger-sized step starts at sample i, else None."""
    before = power[i - BASELINE_SAMPLES : i]
    after = power[i : i + 3]
    if len(before) < BASELINE_SAMPLES or len(after) < 3:
        return None
    baseline = statistics.median(before)
    if max(before) - min(before) > MIN_STEP_W / 2:
        return None  # the circuit was not steady just before: not a clean step
    step = statistics.median(after) - baseline
    if not MIN_STEP_W <= step <= MAX_STEP_W:
        return None
    return baseline, step


def charging_signature(
    samples: Sequence[tuple[float, float]], utc_offset_h: float = 8.0
) -> ChargingSignature | None:
    """The charger signature in (ts, W) samples (oldest first), or None."""
    if len(samples) < BASELINE_SAMPLES + 3:
        return None
    ts = [t for t, _ in samples]
    power = [w for _, w in samples]
    end = ts[-1]
    for i in range(BASELINE_SAMPLES, len(samples) - 2):
        if end - ts[i] < MIN_DURATION_S:
            return None  # later steps are too recent to have lasted
        found = _step_at(power, i)
        if found is None:
            continue
        baseline, _ = found
        delta = [w - baseline for w in power[i:]]
        times = ts[i:]
        head = [d for t, d in zip(times, delta, strict=True) if t < times[0] + PLATEAU_S]
        tail = [d for t, d in zip(times, delta, strict=True) if t > end - PLATEAU_S]
        plateau = statistics.median(head)
        if not MIN_STEP_W <= plateau <= MAX_STEP_W:
            continue
        if (max(head) - min(head)) > MAX_PLATEAU_SWING * plateau:
            continue
        if min(delta) < ELEVATED_RATIO * plateau:
            continue  # it went off in between: not one continuous load
        drops = [a - b for a, b in pairwise(delta)]
        if drops and max(drops) > MAX_DROP_RATIO * plateau:
            continue
        tail_w = statistics.median(tail)
        if tail_w > TAPER_RATIO * plateau:
            continue
        if not is_night(ts[i], utc_offset_h):
            continue
        return ChargingSignature(ts[i], baseline, plateau, tail_w, end - ts[i])
    return None
