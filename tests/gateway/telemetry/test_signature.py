"""The e-bike charger signature on generated circuit-meter curves (30 s samples), with the
look-alikes that must not fire."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from gateway.telemetry.signature import charging_signature

DAY = 1_800_000_000.0 - (1_800_000_000.0 % 86_400)  # a UTC midnight
STEP_S = 30.0
UTC8 = 8.0


def at_local(hour: float) -> float:
    """The UTC epoch of `hour` local time (UTC+8) on DAY."""
    return DAY + (hour - UTC8) * 3600.0


def curve(
    start_h: float, hours: float, load: Callable[[float], float], seed: int = 1
) -> list[tuple[float, float]]:
    """Samples of a household baseline (60 W, ±4 W noise) plus `load(seconds since start)`."""
    rng = random.Random(seed)
    t0 = at_local(start_h)
    n = int(hours * 3600 / STEP_S)
    return [(t0 + k * STEP_S, 60.0 + rng.uniform(-4, 4) + load(k * STEP_S)) for k in range(n)]


def charger(on_at_s: float, cc_s: float, plateau_w: float = 180.0, cv_tau_s: float = 2400.0):
    """Constant current for `cc_s`, then power falling exponentially (constant voltage)."""

    def load(t: float) -> float:
        if t < on_at_s:
            return 0.0
        if t < on_at_s + cc_s:
            return plateau_w
        return plateau_w * math.exp(-(t - on_at_s - cc_s) / cv_tau_s)

    return load


def cycling(on_s: float, off_s: float, watts: float, spike_w: float = 0.0, from_s: float = 600.0):
    def load(t: float) -> float:
        if t < from_s:
            return 0.0
        phase = (t - from_s) % (on_s + off_s)
        if phase >= on_s:
            return 0.0
        return watts + (spike_w if phase < STEP_S else 0.0)

    return load


def block(from_s: float, to_s: float, watts: float):
    return lambda t: watts if from_s <= t < to_s else 0.0


def test_signature_charger_at_night_fires_once_tapering() -> None:
    # plugged in at 22:40, 2 h of constant current, then tapering
    load = charger(on_at_s=600, cc_s=2 * 3600)
    samples = curve(22.5, 3.0, load)
    found = charging_signature(samples, UTC8)
    assert found is not None
    assert found.started_at == at_local(22.5) + 600
    assert 170 <= found.plateau_w <= 190
    assert found.tail_w <= 0.85 * found.plateau_w
    assert found.reason.startswith("charger signature: +1")


def test_signature_not_before_the_taper() -> None:
    # 1 h 50 min into constant current: a steady 180 W load could still be anything
    samples = curve(22.5, 2.0, charger(on_at_s=600, cc_s=2 * 3600))
    assert charging_signature(samples, UTC8) is None


@pytest.mark.parametrize(
    ("name", "start_h", "hours", "load"),
    [
        ("the same charger by day", 13.5, 3.0, charger(600, 2 * 3600)),
        (
            "kettle boiling three times",
            22.5,
            3.0,
            lambda t: 2000.0 if any(s <= t < s + 180 for s in (600, 4000, 8000)) else 0.0,
        ),
        (
            "fridge cycling 20 on / 30 off with a start spike",
            22.5,
            4.0,
            cycling(1200, 1800, 120, spike_w=250),
        ),
        ("fridge on a long 45 min cycle", 22.5, 4.0, cycling(2700, 1500, 110)),
        ("space heater on its thermostat", 22.5, 3.0, cycling(900, 600, 1500)),
        ("space heater low setting, 1 h, switched off", 22.5, 3.0, block(600, 4200, 350)),
        ("heater low setting cycling", 22.5, 3.0, cycling(600, 300, 350)),
        ("TV all evening", 22.5, 3.0, lambda t: 110 + 10 * math.sin(t / 300) if t >= 600 else 0.0),
        ("phone charger", 22.5, 3.0, charger(600, 1800, plateau_w=15)),
        ("a 1 kW load tapering", 22.5, 3.0, charger(600, 1800, plateau_w=1000)),
    ],
)
def test_signature_look_alikes_do_not_fire(
    name: str, start_h: float, hours: float, load: Callable[[float], float]
) -> None:
    assert charging_signature(curve(start_h, hours, load), UTC8) is None, name


def test_signature_fires_during_the_taper_and_stops_when_charged() -> None:
    """Evaluated as readings arrive: silent through constant current, firing in the taper,
    silent again once the charger is done (the condition then clears)."""
    samples = curve(23.0, 4.0, charger(on_at_s=700, cc_s=3600, plateau_w=250))
    verdicts = [
        charging_signature(samples[:n], UTC8) is not None for n in range(20, len(samples), 20)
    ]
    first = verdicts.index(True)
    last = len(verdicts) - 1 - verdicts[::-1].index(True)
    assert not any(verdicts[:first])
    assert all(verdicts[first : last + 1])
    assert not verdicts[-1]
