"""The rules of a profile applied to one device's readings. Pure: `now` is passed in, the
only state is the device's own short memory (last values, active conditions).

A *condition* is what one ticket is about: the profile rule's ``condition`` name, prefixed
with the port for per-port metrics (``port2_over_temperature``). Several rules may share a
condition (smoke alarm, obscuration and heat all mean ``fire``): it is active while any of
them is, so one fire gives one ticket. `DeviceRules` reports only transitions (a condition
becoming active or clearing), never the same state twice, so a flood of over-threshold
readings cannot become a storm of alerts.

Besides the profile's rules, every device has three built-in conditions:

- ``out_of_range_{metric}`` (profile's ``out_of_range_condition`` category): a value outside
  the metric's valid range; the reading is flagged and kept away from the other rules;
- ``offline`` (device_offline): no reading for ``offline_after_intervals`` × the reporting
  interval, or the node's own LWT saying offline;
- whatever is stuck (`StuckRule`) is an ordinary profile rule.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, NamedTuple

from contract import Severity
from gateway.sla import TicketCategory
from gateway.telemetry.profiles import (
    BinaryRule,
    ChargingSignatureRule,
    DeviceProfile,
    RateOfRiseRule,
    Rule,
    StuckRule,
    ThresholdRule,
)
from gateway.telemetry.signature import charging_signature

OFFLINE = "offline"
_BY_TS = itemgetter(2)  # Reading.ts, without a Python call per reading


class Reading(NamedTuple):
    """One value of one metric (and port) at `ts` (epoch seconds). A tuple: there are
    tens of thousands a second."""

    metric: str
    value: float
    ts: float
    port: int | None = None

    @property
    def series(self) -> str:
        """The stored series name: ``port2_temperature`` or ``ambient_temperature``."""
        return self.metric if self.port is None else f"port{self.port}_{self.metric}"


@dataclass(frozen=True)
class Transition:
    """A condition of a device became active (`active`) or cleared."""

    condition: str
    category: TicketCategory
    severity: Severity
    active: bool
    ts: float
    started_at: float
    reason: str
    port: int | None = None
    cut_off: bool = False


@dataclass
class _Series:
    history: deque[tuple[float, float]] = field(default_factory=deque)
    long: deque[tuple[float, float]] = field(default_factory=deque)
    same_since: float | None = None
    last: float | None = None


def condition_key(condition: str, port: int | None) -> str:
    """The ticket condition of a rule on a port."""
    return condition if port is None else f"port{port}_{condition}"


class DeviceRules:
    """One device's rule state. Feed it `observe(readings, now)`, `availability(online, now)`
    and `check_offline(now)`; each returns the transitions it caused."""

    def __init__(self, profile: DeviceProfile, now: float) -> None:
        self.profile = profile
        self.last_seen = now
        self._series: dict[tuple[str, int | None], _Series] = {}
        # (rule index, port) → reason while that rule holds; conditions → since when active
        self._holding: dict[tuple[int, int | None], str] = {}
        self._active: dict[str, float] = {}
        self._window = max(
            (r.window_s for r in profile.rules if isinstance(r, RateOfRiseRule)), default=0.0
        )
        self._rate_metrics = {r.metric for r in profile.rules if isinstance(r, RateOfRiseRule)}
        # Each rule's judge chosen once, not by an isinstance chain for every reading.
        self._by_metric: dict[str, list[tuple[int, Rule, _Judge]]] = {}
        for index, rule in enumerate(profile.rules):
            self._by_metric.setdefault(rule.metric, []).append((index, rule, _judge_of(rule)))
        self._faulty: set[tuple[str, int | None]] = set()
        # Looked up for every reading: plain dicts, not the pydantic model's attributes.
        self._specs = {m.name: (m.min, m.max, m.kind == "binary") for m in profile.metrics}
        # The valid range as two bounds (±inf where the profile sets none) and whether the
        # metric is binary: one chained comparison for a reading that is in range.
        self._bounds = {
            m.name: (
                -math.inf if m.min is None else m.min,
                math.inf if m.max is None else m.max,
                m.kind == "binary",
            )
            for m in profile.metrics
        }
        self.rejected: list[tuple[Reading, str]] = []
        """Readings of the last `observe` refused as out of range or unknown, and why."""
        self._long_window = {
            r.metric: r.window_s for r in profile.rules if isinstance(r, ChargingSignatureRule)
        }

    @property
    def has_active(self) -> bool:
        """Whether any condition is active (the pipeline's fast path when none is)."""
        return bool(self._active)

    @property
    def active(self) -> dict[str, float]:
        """Active conditions and since when."""
        return dict(self._active)

    def observe(self, readings: Iterable[Reading], now: float) -> list[Transition]:
        """Apply readings (in time order); transitions caused, in order."""
        out: list[Transition] = []
        self.rejected = []
        if OFFLINE in self._active:
            out.append(self._clear(OFFLINE, TicketCategory.DEVICE_OFFLINE, now, "heard again"))
        self.last_seen = max(self.last_seen, now)
        for reading in sorted(readings, key=_BY_TS):
            self._one(reading, out)
        return out

    def availability(self, online: bool, now: float) -> list[Transition]:
        """The node's own online/offline status (ESPHome LWT, contract Status)."""
        if online:
            return self.observe((), now)
        if OFFLINE in self._active:
            return []
        return [
            self._open(
                OFFLINE,
                TicketCategory.DEVICE_OFFLINE,
                Severity.NORMAL,
                now,
                "the node reported itself offline (last will)",
            )
        ]

    def check_offline(self, now: float) -> list[Transition]:
        """Offline when nothing was heard for the profile's offline window."""
        silent = now - self.last_seen
        if OFFLINE in self._active or silent < self.profile.offline_after_s:
            return []
        reason = f"no reading for {silent:.0f} s (limit {self.profile.offline_after_s:g} s)"
        return [self._open(OFFLINE, TicketCategory.DEVICE_OFFLINE, Severity.NORMAL, now, reason)]

    def out_of_range(self, reading: Reading) -> str | None:
        """Why a reading is outside its metric's valid range, or None."""
        spec = self._specs.get(reading.metric)
        if spec is None:
            return f"{reading.metric!r} is not a metric of profile {self.profile.name!r}"
        low, high, binary = spec
        value = reading.value
        if low is not None and value < low:
            return f"{reading.series} {value:g} is below the valid minimum {low:g}"
        if high is not None and value > high:
            return f"{reading.series} {value:g} is above the valid maximum {high:g}"
        if binary and value not in (0.0, 1.0):
            return f"{reading.series} {value:g} is not 0 or 1"
        return None

    def _one(self, reading: Reading, out: list[Transition]) -> None:
        metric, value, _, port = reading
        bounds = self._bounds.get(metric)
        # In range: between the bounds (NaN is not; it takes the full check below) and, for
        # a binary metric, 0 or 1.
        if (
            bounds is None
            or not bounds[0] <= value <= bounds[1]
            or (bounds[2] and value not in (0.0, 1.0))
        ):
            problem = self.out_of_range(reading)
            if problem is not None:
                self._refuse(reading, problem, out)
                return
        where = (metric, port)
        if self._faulty and where in self._faulty:
            self._faulty.discard(where)
            fault = condition_key(f"out_of_range_{metric}", port)
            category = self.profile.out_of_range_condition
            out.append(self._clear(fault, category, reading.ts, "back in range"))
        rules = self._by_metric.get(metric)
        if rules is None:
            return  # only stored: no rule reads this metric's history
        series = self._series.get(where)
        if series is None:
            series = self._series[where] = _Series()
        self._remember(series, reading)
        holding = self._holding
        for index, rule, judge in rules:
            held = bool(holding) and (index, port) in holding
            verdict = judge(rule, series, reading, held)
            if verdict is None and not held:
                continue  # quiet, and it was: the common case, nothing to record
            if verdict is not None and held:
                continue  # still holding
            out += self._apply(index, rule, reading, verdict)

    def _refuse(self, reading: Reading, problem: str, out: list[Transition]) -> None:
        self.rejected.append((reading, problem))
        where = (reading.metric, reading.port)
        if where not in self._faulty:
            self._faulty.add(where)
            fault = condition_key(f"out_of_range_{reading.metric}", reading.port)
            category = self.profile.out_of_range_condition
            out.append(self._open(fault, category, Severity.NORMAL, reading.ts, problem))

    def _remember(self, series: _Series, reading: Reading) -> None:
        if reading.metric in self._rate_metrics:
            series.history.append((reading.ts, reading.value))
            while series.history and series.history[0][0] < reading.ts - self._window:
                series.history.popleft()
        long_window = self._long_window.get(reading.metric)
        if long_window is not None:
            series.long.append((reading.ts, reading.value))
            while series.long and series.long[0][0] < reading.ts - long_window:
                series.long.popleft()
        if series.last != reading.value or series.same_since is None:
            series.same_since = reading.ts
        series.last = reading.value

    def _apply(
        self, index: int, rule: Rule, reading: Reading, verdict: str | None
    ) -> list[Transition]:
        """A rule started holding (`verdict`) or stopped (None): the condition's transition,
        if it made one."""
        key = (index, reading.port)
        if verdict is None:
            del self._holding[key]
        else:
            self._holding[key] = verdict
        condition = condition_key(rule.condition, reading.port)
        still = [
            reason
            for (i, port), reason in self._holding.items()
            if port == reading.port and self.profile.rules[i].condition == rule.condition
        ]
        if verdict is not None and condition not in self._active:
            return [
                self._open(
                    condition,
                    rule.category,
                    rule.severity,
                    reading.ts,
                    verdict,
                    port=reading.port,
                    cut_off=rule.cut_off,
                )
            ]
        if verdict is None and not still and condition in self._active:
            reason = f"{reading.series} {reading.value:g}: clear"
            return [self._clear(condition, rule.category, reading.ts, reason, reading.port)]
        return []

    def _open(
        self,
        condition: str,
        category: TicketCategory,
        severity: Severity,
        ts: float,
        reason: str,
        *,
        port: int | None = None,
        cut_off: bool = False,
    ) -> Transition:
        self._active[condition] = ts
        return Transition(condition, category, severity, True, ts, ts, reason, port, cut_off)

    def _clear(
        self,
        condition: str,
        category: TicketCategory,
        ts: float,
        reason: str,
        port: int | None = None,
    ) -> Transition:
        started = self._active.pop(condition)
        return Transition(condition, category, Severity.NORMAL, False, ts, started, reason, port)


_Judge = Callable[[Any, _Series, Reading, bool], str | None]
"""The reason a rule holds after a reading, or None; the bool is whether it held before
(hysteresis)."""


def _binary(rule: BinaryRule, series: _Series, reading: Reading, holding: bool) -> str | None:
    return f"{reading.series} is on" if reading.value >= 1.0 else None


def _signature(
    rule: ChargingSignatureRule, series: _Series, reading: Reading, holding: bool
) -> str | None:
    found = charging_signature(series.long, rule.utc_offset_h)
    return None if found is None else found.reason


def _stuck(rule: StuckRule, series: _Series, reading: Reading, holding: bool) -> str | None:
    assert series.same_since is not None
    unchanged = reading.ts - series.same_since
    if unchanged >= rule.unchanged_for_s:
        return f"{reading.series} stuck at {reading.value:g} for {unchanged:.0f} s"
    return None


def _judge_of(rule: Rule) -> _Judge:
    if isinstance(rule, BinaryRule):
        return _binary
    if isinstance(rule, ThresholdRule):
        return _threshold
    if isinstance(rule, RateOfRiseRule):
        return _rate_of_rise
    if isinstance(rule, ChargingSignatureRule):
        return _signature
    return _stuck


def _threshold(rule: ThresholdRule, series: _Series, reading: Reading, holding: bool) -> str | None:
    value = reading.value
    if rule.above is not None:
        if value >= (rule.clear_at if holding else rule.above):
            return f"{reading.series} {value:g} >= {rule.above:g}"
        return None
    assert rule.below is not None
    if value <= (rule.clear_at if holding else rule.below):
        return f"{reading.series} {value:g} <= {rule.below:g}"
    return None


def _rate_of_rise(
    rule: RateOfRiseRule, series: _Series, reading: Reading, holding: bool
) -> str | None:
    t0, v0 = series.history[0]
    elapsed = reading.ts - t0
    # Under a quarter of the window the slope is mostly noise between two samples.
    if elapsed < rule.window_s / 4:
        return f"{reading.series} rising" if holding else None
    rate = (reading.value - v0) / (elapsed / 60.0)
    if rate >= rule.rise_per_min:
        return f"{reading.series} rising {rate:.1f}/min >= {rule.rise_per_min:g}/min"
    return None
