"""Device profiles: what a sensor node type reports, its valid ranges and its default rules.

A profile is a YAML file in ``firmware_configs/profiles/`` validated here (pydantic,
``extra="forbid"``). Per-port metrics (a charging-pile monitor's ports) are named
``port{n}_{metric}`` on the wire, or ``{metric}`` with the tag ``port: "n"`` in a
TelemetryBatch; `DeviceProfile.resolve` turns either into a `(metric, port)` pair.

Errors are one line: ``file: rules[2].metric: 'tmp' is not a metric of this profile``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contract import Severity
from gateway.sla import TicketCategory

PROFILES_DIR = Path(__file__).resolve().parent.parent.parent / "firmware_configs" / "profiles"
"""Where the shipped profiles live in a checkout."""

MetricName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")]
ConditionName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")]
_PORT_METRIC = re.compile(r"^port(\d{1,2})_([a-z][a-z0-9_]*)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricSpec(_Strict):
    """One quantity a node reports."""

    name: MetricName = Field(description="Metric name (per-port metrics without the prefix).")
    unit: str | None = Field(default=None, max_length=16, description="Unit, e.g. 'C', '%/m'.")
    kind: Literal["gauge", "counter", "binary"] = Field(
        default="gauge", description="binary: 0/1 (alarm, tamper, relay state)."
    )
    min: float | None = Field(default=None, description="Lowest physically valid value.")
    max: float | None = Field(default=None, description="Highest physically valid value.")
    per_port: bool = Field(default=False, description="Reported once per port.")
    description: str = Field(default="", max_length=200)

    @model_validator(mode="after")
    def _range(self) -> MetricSpec:
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError("min must be below max")
        return self


class _Rule(_Strict):
    metric: MetricName = Field(description="The metric the rule watches.")
    condition: ConditionName = Field(description="Names the ticket: one open per condition.")
    category: TicketCategory = Field(description="Ticket category opened.")
    severity: Severity = Field(default=Severity.URGENT, description="Ticket severity.")
    cut_off: bool = Field(
        default=False, description="Also switch the port's relay off (charging monitors)."
    )


class ThresholdRule(_Rule):
    """Fires when the value crosses `above` (or falls under `below`); clears only past
    `clear_at`, so a value hovering at the threshold does not open and close tickets."""

    type: Literal["threshold"] = "threshold"
    above: float | None = Field(default=None, description="Fire at value >= above.")
    below: float | None = Field(default=None, description="Fire at value <= below.")
    clear_at: float = Field(description="Clear at value < clear_at (above) or > (below).")

    @model_validator(mode="after")
    def _one_side(self) -> ThresholdRule:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of 'above' and 'below'")
        if self.above is not None and self.clear_at > self.above:
            raise ValueError("clear_at must not exceed 'above' (hysteresis goes down)")
        if self.below is not None and self.clear_at < self.below:
            raise ValueError("clear_at must not be under 'below' (hysteresis goes up)")
        return self


class BinaryRule(_Rule):
    """Fires while a binary metric is 1 (smoke alarm, tamper); clears when it is 0."""

    type: Literal["binary"] = "binary"


class RateOfRiseRule(_Rule):
    """Fires when the value rose by `rise_per_min` per minute or more over `window_s`."""

    type: Literal["rate_of_rise"] = "rate_of_rise"
    rise_per_min: float = Field(gt=0, description="Rise that fires, units per minute.")
    window_s: float = Field(default=60.0, gt=0, le=3600, description="Window looked back over.")


class StuckRule(_Rule):
    """Fires when a metric repeated exactly the same value for `unchanged_for_s` (a dead
    sensor often reports its last value forever)."""

    type: Literal["stuck"] = "stuck"
    unchanged_for_s: float = Field(gt=0, description="Seconds of identical values that fire.")


class ChargingSignatureRule(_Rule):
    """Fires on the power signature of an e-bike charger at night (`gateway.telemetry.
    signature`: its figures and why)."""

    type: Literal["charging_signature"] = "charging_signature"
    window_s: float = Field(
        default=8 * 3600.0, ge=3600, le=24 * 3600, description="Power history looked at."
    )
    utc_offset_h: float = Field(default=8.0, ge=-12, le=14, description="Site's UTC offset.")


Rule = Annotated[
    ThresholdRule | BinaryRule | RateOfRiseRule | StuckRule | ChargingSignatureRule,
    Field(discriminator="type"),
]


class RelaySpec(_Strict):
    """How the gateway switches a port off and learns that it did."""

    state_metric: MetricName = Field(
        default="relay", description="Binary per-port metric: 1 on, 0 off."
    )
    confirm_within_s: float = Field(
        default=10.0, gt=0, le=600, description="A cut-off not confirmed by then escalates."
    )


class DeviceProfile(_Strict):
    """A node type."""

    name: MetricName = Field(description="Profile name, used by `--profile`.")
    description: str = Field(default="", max_length=300)
    sensor_kind: MetricName = Field(description="The TelemetryBatch sensor_kind it sends.")
    ports: int = Field(default=0, ge=0, le=32, description="Charging ports (0: none).")
    reporting_interval_s: float = Field(gt=0, le=3600, description="Seconds between reports.")
    offline_after_intervals: float = Field(
        default=3.0, ge=1.0, le=100.0, description="Offline after this many silent intervals."
    )
    metrics: list[MetricSpec] = Field(min_length=1, max_length=64)
    rules: list[Rule] = Field(default_factory=list, max_length=64)
    relay: RelaySpec | None = Field(default=None, description="Per-port relays, if any.")
    out_of_range_condition: TicketCategory = Field(
        default=TicketCategory.SENSOR_FAULT, description="Category for out-of-range readings."
    )

    @model_validator(mode="after")
    def _consistent(self) -> DeviceProfile:
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError("metric names must be unique")
        by_name = {m.name: m for m in self.metrics}
        for rule in self.rules:
            if rule.metric not in by_name:
                raise ValueError(f"rule {rule.condition!r}: {rule.metric!r} is not a metric")
            if isinstance(rule, BinaryRule) and by_name[rule.metric].kind != "binary":
                raise ValueError(f"rule {rule.condition!r}: {rule.metric!r} is not binary")
            if rule.cut_off and (self.relay is None or not by_name[rule.metric].per_port):
                raise ValueError(
                    f"rule {rule.condition!r}: cut_off needs a relay and a port metric"
                )
        # A condition is one ticket per device (its zone); the store's open-ticket key is
        # (site, device, category, zone), so rules sharing a condition share its category.
        categories: dict[str, TicketCategory] = {}
        for rule in self.rules:
            seen = categories.setdefault(rule.condition, rule.category)
            if seen is not rule.category:
                raise ValueError(
                    f"rule {rule.condition!r}: every rule of a condition has one category "
                    f"({seen.value!r}, not {rule.category.value!r})"
                )
        if self.relay is not None:
            spec = by_name.get(self.relay.state_metric)
            if spec is None or not spec.per_port or spec.kind != "binary":
                raise ValueError("relay.state_metric must be a binary per-port metric")
        if any(m.per_port for m in self.metrics) and self.ports == 0:
            raise ValueError("per-port metrics need ports >= 1")
        return self

    @property
    def offline_after_s(self) -> float:
        """Silence after which the node counts as offline."""
        return self.reporting_interval_s * self.offline_after_intervals

    def metric(self, name: str) -> MetricSpec | None:
        """The spec of a metric by its bare name."""
        for spec in self.metrics:
            if spec.name == name:
                return spec
        return None

    def resolve(self, wire_name: str, port_tag: str | None = None) -> tuple[str, int | None] | None:
        """(metric, port) of a wire name (``port2_temperature`` or ``temperature`` plus
        the port tag), or None when the profile has no such metric or port."""
        port: int | None = None
        name = wire_name
        match = _PORT_METRIC.match(wire_name)
        if match is not None:
            port, name = int(match.group(1)), match.group(2)
        elif port_tag is not None:
            if not port_tag.isdigit():
                return None
            port = int(port_tag)
        spec = self.metric(name)
        if spec is None or spec.per_port != (port is not None):
            return None
        if port is not None and not 1 <= port <= self.ports:
            return None
        return name, port


class ProfileError(ValueError):
    """A profile file that does not validate; the message is one line naming the field."""


def parse_profile(data: object, origin: str) -> DeviceProfile:
    """Validate loaded YAML as a profile, or raise `ProfileError`."""
    try:
        return DeviceProfile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        problem = first["msg"]
        if first["type"] == "extra_forbidden":
            problem = "unknown key (see docs/sensors.md for the fields)"
        raise ProfileError(f"{origin}: {field}: {problem}") from exc


def load_profile(path: Path) -> DeviceProfile:
    """Read and validate one profile file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"{path}: (file): {str(exc).splitlines()[0]}") from exc
    return parse_profile(data, str(path))


def load_profiles(directory: Path = PROFILES_DIR) -> dict[str, DeviceProfile]:
    """Every ``*.yaml`` profile in a directory, by name (a file named differently from its
    profile is an error, so `--profile` and the file agree)."""
    found: dict[str, DeviceProfile] = {}
    for path in sorted(directory.glob("*.yaml")):
        profile = load_profile(path)
        if profile.name != path.stem:
            raise ProfileError(f"{path}: name: must equal the file name {path.stem!r}")
        found[profile.name] = profile
    return found
