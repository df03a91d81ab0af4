"""One pipeline for both ways in: contract `TelemetryBatch`es and ESPHome entity states.

For each message: resolve every reading through the device's profile (an unknown metric or
port, or an out-of-range value, is flagged with its reason and not stored), run the
device's rules, and return what the caller must do in the ticket transaction, in the
stores once that committed (`points`), and on the broker:

- `alerts`: condition transitions as Alerts (one ticket per device and condition), plus a
  re-assertion of every condition still active that this message touched (msg id per
  message, so it is idempotent), so an alert lost with a rolled-back transaction is made
  good by the next reading instead of being forgotten by the in-memory rule state;
- `commands`: relay cut-offs to publish (ESPHome ``switch/port{n}_relay/command`` ``OFF``,
  or a contract ``Command`` ``relay`` with ``{"port": n, "state": "off"}``);
- `confirmed` / `overdue`: cut-offs whose relay came back off, or did not in time.

`tick(now)` runs the clock-driven rules (offline by silence, overdue cut-offs). The only
I/O is the registry `lookup` (cached by the caller); `now` is injected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from contract import Command, EventPhase, encode
from contract.topics import command_topic
from gateway.alerts import Alert
from gateway.telemetry import esphome
from gateway.telemetry.alerts import transition_alert
from gateway.telemetry.cutoff import Confirmed, Cutoff, CutoffTracker
from gateway.telemetry.points import Point
from gateway.telemetry.profiles import DeviceProfile
from gateway.telemetry.rules import DeviceRules, Reading, Transition
from gateway.telemetry.wire import WireBatch

ESPHOME_REPEAT_FRACTION = 0.8
"""An ESPHome state repeated within this fraction of its node's reporting interval is the
same state delivered again (a broker redelivery, a retained replay, ESPHome republishing on
reconnect): a node reports a sensor at most once an interval (docs/sensors.md)."""

RELAY_COMMAND = "relay"
"""The contract command name of a relay switch on our own nodes."""


@dataclass(frozen=True)
class SensorNode:
    """A registered sensor device and its profile; `esphome` when it speaks ESPHome."""

    site_id: str
    device_id: str
    profile: DeviceProfile
    esphome: bool = False


@dataclass(frozen=True)
class RelayCommand:
    """A relay command to publish (QoS 1)."""

    site_id: str
    device_id: str
    port: int
    topic: str
    payload: bytes


@dataclass
class Outcome:
    """What one message (or one tick) asks of the caller."""

    alerts: list[Alert] = field(default_factory=list)
    commands: list[RelayCommand] = field(default_factory=list)
    confirmed: list[Confirmed] = field(default_factory=list)
    overdue: list[Cutoff] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    repeat_within_s: float = 0.0
    """ESPHome only: a state equal to its series' newest stored point less than this long
    before it is the same state again, not a new reading (`SqliteTelemetryStore`)."""


class UnknownNodeError(LookupError):
    """The device is not a registered sensor node (or not at that site)."""


class TelemetryPipeline:
    """Readings in; stored points, alerts and relay commands out."""

    def __init__(self, lookup: Callable[[str], SensorNode | None]) -> None:
        self.lookup = lookup
        self.cutoffs = CutoffTracker()
        self.flagged_total = 0
        self._rules: dict[str, DeviceRules] = {}
        # (profile, wire name, port tag) → (metric, port, stored series name): the same few
        # names, every message.
        self._resolved: dict[tuple[str, str, str | None], tuple[str, int | None, str] | None] = {}
        self._nodes: dict[str, SensorNode] = {}

    def _node(
        self, site_id: str, device_id: str, now: float, node: SensorNode | None = None
    ) -> tuple[SensorNode, DeviceRules]:
        if node is None:
            node = self.lookup(device_id)
        if node is None or node.site_id != site_id or node.device_id != device_id:
            raise UnknownNodeError(f"device {device_id!r} is not a sensor node of site {site_id!r}")
        rules = self._rules.get(device_id)
        if rules is None or rules.profile is not node.profile:
            rules = self._rules[device_id] = DeviceRules(node.profile, now)
        self._nodes[device_id] = node
        return node, rules

    def batch(self, batch: WireBatch, now: float, node: SensorNode | None = None) -> Outcome:
        """A contract TelemetryBatch (already validated: `gateway.telemetry.wire`); `node`
        when the caller has just looked it up (else `lookup` is asked)."""
        node, rules = self._node(batch.site_id, batch.device_id, now, node)
        readings: list[Reading] = []
        points: list[Point] = []
        flagged: list[str] = []
        profile = node.profile
        site, device, resolved_names, name = (
            node.site_id,
            node.device_id,
            self._resolved,
            profile.name,
        )
        for point in batch.points:
            key = (name, point.metric, point.tags.get("port") if point.tags else None)
            resolved = resolved_names.get(key, _UNSEEN)
            if resolved is _UNSEEN:
                found = profile.resolve(key[1], key[2])
                resolved = None if found is None else (*found, _series(*found))
                if len(resolved_names) < 100_000:  # bounded: names come from devices
                    resolved_names[key] = resolved
            if resolved is None:
                flagged.append(f"{point.metric}: not a metric (or port) of {node.profile.name}")
                continue
            metric, port, series = resolved
            value, ts = point.value, point.ts
            # `tuple.__new__` is what a NamedTuple's `_make` calls: the class's own
            # `__new__` is a Python function, ~200 ns more a tuple, two tuples a reading.
            readings.append(_new(Reading, (metric, value, ts, port)))
            points.append(_new(Point, (site, device, series, value, ts)))
        return self._apply(
            node, rules, readings, flagged=flagged, msg_id=batch.msg_id, now=now, points=points
        )

    def esphome(self, topic: str, payload: bytes, now: float) -> Outcome:
        """An ESPHome entity state or status. Raises `EsphomeError` / `UnknownNodeError`."""
        parsed = esphome.parse(topic, payload)
        if parsed is None:
            return Outcome()
        node, rules = self._node(parsed.site_id, parsed.device_id, now)
        msg = f"esp-{parsed.device_id}-{now:.6f}"
        if isinstance(parsed, esphome.EsphomeStatus):
            transitions = rules.availability(parsed.online, now)
            return Outcome(alerts=self._alerts(node, transitions, msg, now))
        resolved = node.profile.resolve(parsed.object_id)
        if resolved is None:
            reason = f"{parsed.object_id}: not a metric (or port) of {node.profile.name}"
            return self._apply(node, rules, [], flagged=[reason], msg_id=msg, now=now)
        reading = Reading(resolved[0], parsed.value, now, resolved[1])
        out = self._apply(node, rules, [reading], flagged=[], msg_id=msg, now=now)
        out.repeat_within_s = node.profile.reporting_interval_s * ESPHOME_REPEAT_FRACTION
        return out

    def _apply(
        self,
        node: SensorNode,
        rules: DeviceRules,
        readings: list[Reading],
        *,
        flagged: list[str],
        msg_id: str,
        now: float,
        points: list[Point] | None = None,
    ) -> Outcome:
        """`points`: the readings as stored, one for one, when the caller made them."""
        transitions = rules.observe(readings, now)
        refused = {id(r) for r, _ in rules.rejected}
        flagged += [problem for _, problem in rules.rejected]
        good = [r for r in readings if id(r) not in refused] if refused else readings
        self.flagged_total += len(flagged)
        site, device = node.site_id, node.device_id
        if points is None:
            points = [Point(site, device, r.series, r.value, r.ts) for r in good]
        elif refused:
            points = [p for r, p in zip(readings, points, strict=True) if id(r) not in refused]
        out = Outcome(flagged=flagged, points=points)
        touched = {_condition_of(r) for r in readings} if rules.has_active else ()
        out.alerts = self._alerts(node, transitions, msg_id, now, rules=rules, touched=touched)
        relay = node.profile.relay
        for t in transitions:
            if t.active and t.cut_off and t.port is not None and relay is not None:
                cut = self.cutoffs.request(
                    node.site_id,
                    node.device_id,
                    t.port,
                    condition=t.condition,
                    category=t.category.value,
                    now=now,
                    confirm_within_s=relay.confirm_within_s,
                )
                if cut is not None:
                    out.commands.append(self._relay_off(node, t.port, now))
        if relay is not None:
            state_metric = relay.state_metric
            for r in good:
                if r.metric == state_metric and r.port is not None:
                    confirmed = self.cutoffs.relay_state(node.device_id, r.port, r.value >= 1, now)
                    if confirmed is not None:
                        out.confirmed.append(confirmed)
        return out

    def _alerts(
        self,
        node: SensorNode,
        transitions: Sequence[Transition],
        msg_id: str,
        now: float,
        *,
        rules: DeviceRules | None = None,
        touched: Iterable[tuple[str, int | None]] = (),
    ) -> list[Alert]:
        if not transitions and not touched:
            return []  # the common case: nothing changed, nothing to re-assert
        kind = node.profile.sensor_kind
        alerts = [transition_alert(node.site_id, node.device_id, kind, t) for t in transitions]
        if rules is None:
            return alerts
        seen = {a.zone_id for a in alerts}
        active = rules.active
        # Re-assert active conditions this message's metrics feed (see the module docstring).
        for metric, port in set(touched):
            for rule in node.profile.rules:
                condition = rule.condition if port is None else f"port{port}_{rule.condition}"
                started = active.get(condition)
                if rule.metric != metric or started is None or condition in seen:
                    continue
                seen.add(condition)
                held = Transition(
                    condition,
                    rule.category,
                    rule.severity,
                    True,
                    now,
                    started,
                    "still active",
                    port,
                    rule.cut_off,
                )
                alert = transition_alert(node.site_id, node.device_id, kind, held)
                alerts.append(
                    replace(alert, msg_id=f"{msg_id}-{condition}", phase=EventPhase.UPDATE, seq=1)
                )
        return alerts

    def _relay_off(self, node: SensorNode, port: int, now: float) -> RelayCommand:
        if node.esphome:
            topic = esphome.relay_command_topic(node.site_id, node.device_id, f"port{port}_relay")
            return RelayCommand(node.site_id, node.device_id, port, topic, b"OFF")
        command = Command(
            command_id=f"cutoff-{node.device_id}-{port}-{now:.3f}",
            name=RELAY_COMMAND,
            args={"port": port, "state": "off"},
            issued_by="system:telemetry",
            ts=now,
            site_id=node.site_id,
            device_id=node.device_id,
        )
        topic = str(command_topic(node.site_id, node.device_id, RELAY_COMMAND))
        return RelayCommand(node.site_id, node.device_id, port, topic, encode(command))

    def tick(self, now: float) -> Outcome:
        """Offline by silence, and cut-offs not confirmed in time."""
        out = Outcome()
        for device_id, rules in self._rules.items():
            node = self._nodes[device_id]
            out.alerts += self._alerts(node, rules.check_offline(now), f"tick-{now:.3f}", now)
        out.overdue = self.cutoffs.overdue(now)
        return out


_new = tuple.__new__

_UNSEEN: tuple[str, int | None, str] = ("", None, "")
"""`TelemetryPipeline._resolved`'s "not looked up yet" (None means: not a metric)."""


def _series(metric: str, port: int | None) -> str:
    return Reading(metric, 0.0, 0.0, port).series


def _condition_of(reading: Reading) -> tuple[str, int | None]:
    return (reading.metric, reading.port)
