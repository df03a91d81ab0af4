"""What every simulated device sends, and when. Pure: a `SimSpec` and a seed in, a sorted
list of `Planned` sends out; no clock, no network.

A site has `cameras` camera nodes, `sensors` sensor nodes sending TelemetryBatches and
`esphome` stock ESPHome nodes sending their own topics.

- **Events.** Lifecycles (start → update every `update_every_s` → end) begin as a Poisson
  process of `event_rate` per second across the site. Which camera sees one follows a Zipf
  law (`skew`): in a real site a few cameras (the lane by the gate, the fire lane) see most
  of the traffic and most see little. Each camera watches `zones_per_camera` zones, each zone
  one rule (category); a (camera, zone) key has at most one lifecycle at a time, as the edge's
  zone rule has one condition per zone. A lifecycle lasts `dwell_s` (uniform between the
  bounds) and is ended at `duration_s` at the latest, so every start has its end.
- **Snapshots.** A share `snapshot_ratio` of starts carries a snapshot (sent just before it).
- **Heartbeats.** Every camera every `heartbeat_interval_s`, each at its own phase.
- **Telemetry.** Every sensor node a batch every `telemetry_interval_s` (smoke detectors and
  charging monitors alternate); every ESPHome node its states at the same period. A share
  `alarm_ratio` of batches carries an alarm reading (smoke, or a hot charging port).
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract import EventCategory, EventPhase, Severity

ZONE_RULES: tuple[tuple[EventCategory, Severity], ...] = (
    (EventCategory.ILLEGAL_PARKING, Severity.NORMAL),
    (EventCategory.FIRE_LANE_BLOCKED, Severity.URGENT),
    (EventCategory.LITTER, Severity.LOW),
    (EventCategory.EBIKE_IN_ELEVATOR, Severity.URGENT),
)
"""The rule of zone i is ZONE_RULES[i % 4]: every camera mixes urgent and ordinary zones."""

SENSOR_PROFILES = ("smoke_detector", "charging_monitor")
"""Sensor node i runs profile SENSOR_PROFILES[i % 2]; ESPHome nodes are charging monitors."""

ESPHOME_PROFILE = "charging_monitor"
CHARGING_PORTS = 4


class SimSpec(BaseModel):
    """One simulated site and how hard it is driven."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    site_id: str = Field(default="sim", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    prefix: str = Field(
        default="sim-",
        pattern=r"^[A-Za-z0-9_-]{0,40}$",
        description="Device ids are <prefix>cam-001, <prefix>sensor-001, <prefix>esp-001.",
    )
    cameras: int = Field(default=10, ge=0, le=2000)
    sensors: int = Field(default=4, ge=0, le=2000)
    esphome: int = Field(default=2, ge=0, le=2000)
    duration_s: float = Field(default=30.0, gt=0, le=7 * 86400)
    event_rate: float = Field(default=2.0, ge=0, le=10_000, description="Lifecycles per second.")
    zones_per_camera: int = Field(default=3, ge=1, le=16)
    update_every_s: float = Field(default=5.0, gt=0)
    dwell_s: tuple[float, float] = Field(default=(2.0, 20.0))
    snapshot_ratio: float = Field(default=0.3, ge=0, le=1)
    heartbeat_interval_s: float = Field(default=10.0, ge=1, le=3600)
    telemetry_interval_s: float = Field(default=10.0, gt=0, le=3600)
    alarm_ratio: float = Field(default=0.0, ge=0, le=1)
    skew: float = Field(default=1.1, ge=0, le=4, description="Zipf exponent over cameras.")
    seed: int = 0

    @model_validator(mode="after")
    def _dwell_ordered(self) -> SimSpec:
        low, high = self.dwell_s
        if not 0 < low <= high:
            raise ValueError("dwell_s: give (low, high) with 0 < low <= high")
        return self

    def camera_ids(self) -> list[str]:
        """Camera device ids, in order."""
        return [f"{self.prefix}cam-{i + 1:03d}" for i in range(self.cameras)]

    def sensor_ids(self) -> list[str]:
        """TelemetryBatch sensor node ids, in order."""
        return [f"{self.prefix}sensor-{i + 1:03d}" for i in range(self.sensors)]

    def esphome_ids(self) -> list[str]:
        """ESPHome node ids, in order."""
        return [f"{self.prefix}esp-{i + 1:03d}" for i in range(self.esphome)]

    def sensor_profile(self, index: int) -> str:
        """The telemetry profile of sensor node `index` (0-based)."""
        return SENSOR_PROFILES[index % len(SENSOR_PROFILES)]


@dataclass(frozen=True, slots=True)
class EventSend:
    """One publication of a detection lifecycle."""

    at: float
    device_id: str
    event_id: str
    phase: EventPhase
    seq: int
    zone_id: str
    category: EventCategory
    severity: Severity
    started_at: float
    """Offset of the lifecycle's start (the event's `started_at`, relative to the run)."""
    snapshot_id: str | None = None
    kind: Literal["event"] = "event"


@dataclass(frozen=True, slots=True)
class HeartbeatSend:
    """One heartbeat of a camera node."""

    at: float
    device_id: str
    interval_s: float
    kind: Literal["heartbeat"] = "heartbeat"


Reading = tuple[str, float, int | None]
"""(metric, value, port or None)."""


@dataclass(frozen=True, slots=True)
class TelemetrySend:
    """One TelemetryBatch of a sensor node."""

    at: float
    device_id: str
    sensor_kind: str
    readings: tuple[Reading, ...]
    alarm: bool
    kind: Literal["telemetry"] = "telemetry"


@dataclass(frozen=True, slots=True)
class EsphomeSend:
    """One round of an ESPHome node's states: (component, object id, payload text)."""

    at: float
    device_id: str
    states: tuple[tuple[str, str, str], ...]
    alarm: bool
    kind: Literal["esphome"] = "esphome"


Planned = EventSend | HeartbeatSend | TelemetrySend | EsphomeSend


def zone_rule(zone_index: int) -> tuple[EventCategory, Severity]:
    """Category and severity of a camera's zone number `zone_index`."""
    return ZONE_RULES[zone_index % len(ZONE_RULES)]


def zone_id(zone_index: int) -> str:
    """The zone id of a camera's zone number `zone_index`."""
    category, _ = zone_rule(zone_index)
    return f"z{zone_index + 1}-{category.value.replace('_', '-')}"


def _periodic(start: float, period: float, end: float) -> list[float]:
    """Times start, start + period, … below `end`."""
    return [start + k * period for k in range(max(0, math.ceil((end - start) / period)))]


def _zipf_cdf(n: int, skew: float) -> list[float]:
    weights = [1.0 / (rank**skew) for rank in range(1, n + 1)]
    total = sum(weights)
    return list(itertools.accumulate(w / total for w in weights))


def _lifecycles(spec: SimSpec, rng: random.Random) -> list[EventSend]:
    cameras = spec.camera_ids()
    if not cameras or spec.event_rate <= 0:
        return []
    cdf = _zipf_cdf(len(cameras), spec.skew)
    busy_until: dict[tuple[int, int], float] = {}
    out: list[EventSend] = []
    t = rng.expovariate(spec.event_rate)
    serial = 0
    while t < spec.duration_s:
        pick = min(bisect.bisect_left(cdf, rng.random()), len(cameras) - 1)
        zones = list(range(spec.zones_per_camera))
        rng.shuffle(zones)
        free = [z for z in zones if busy_until.get((pick, z), -1.0) < t]
        if free:
            zone = free[0]
            dwell = rng.uniform(*spec.dwell_s)
            end = min(t + dwell, spec.duration_s)
            busy_until[(pick, zone)] = end
            serial += 1
            out += _one_lifecycle(spec, rng, cameras[pick], zone, serial, t, end)
        t += rng.expovariate(spec.event_rate)
    return out


def _one_lifecycle(  # noqa: PLR0917 - one lifecycle's coordinates
    spec: SimSpec,
    rng: random.Random,
    device_id: str,
    zone: int,
    serial: int,
    start: float,
    end: float,
) -> list[EventSend]:
    category, severity = zone_rule(zone)
    event_id = f"ev-{spec.seed:x}-{serial:07d}-{device_id}"[:128]
    snapshot = f"snap-{spec.seed:x}-{serial:07d}" if rng.random() < spec.snapshot_ratio else None
    times = [start, *_periodic(start + spec.update_every_s, spec.update_every_s, end)]
    sends = []
    for seq, at in enumerate([*times, end]):
        if seq == 0:
            phase = EventPhase.START
        elif seq == len(times):
            phase = EventPhase.END
        else:
            phase = EventPhase.UPDATE
        sends.append(
            EventSend(
                at=at,
                device_id=device_id,
                event_id=event_id,
                phase=phase,
                seq=seq,
                zone_id=zone_id(zone),
                category=category,
                severity=severity,
                started_at=start,
                snapshot_id=snapshot if seq == 0 else None,
            )
        )
    return sends


@dataclass
class _Node:
    """One sensor node's steady state: readings wander a little around it (a jump of
    several degrees between two reports would trip the rate-of-rise rules by itself)."""

    temperature: list[float]
    current: list[float]
    ambient: float
    battery: float

    @classmethod
    def draw(cls, rng: random.Random) -> _Node:
        return cls(
            temperature=[rng.uniform(26.0, 34.0) for _ in range(CHARGING_PORTS)],
            current=[rng.uniform(1.0, 2.8) if rng.random() < 0.6 else 0.0 for _ in range(4)],
            ambient=rng.uniform(21.0, 26.0),
            battery=rng.uniform(70.0, 100.0),
        )


def _smoke_readings(rng: random.Random, node: _Node, alarm: bool) -> tuple[Reading, ...]:
    obscuration = rng.uniform(5.0, 9.0) if alarm else rng.uniform(0, 0.3)
    return (
        ("smoke_alarm", 1.0 if alarm else 0.0, None),
        ("smoke_obscuration", round(obscuration, 2), None),
        ("temperature", round(node.ambient + rng.uniform(-0.1, 0.1), 2), None),
        ("co_ppm", round(rng.uniform(0.0, 5.0), 1), None),
        ("battery", round(node.battery, 0), None),
    )


def _charging_readings(rng: random.Random, node: _Node, alarm: bool) -> tuple[Reading, ...]:
    hot = rng.randrange(CHARGING_PORTS) if alarm else -1
    readings: list[Reading] = []
    for port in range(1, CHARGING_PORTS + 1):
        current = round(node.current[port - 1] * rng.uniform(0.97, 1.03), 2)
        temperature = node.temperature[port - 1] + rng.uniform(-0.2, 0.2)
        readings += [
            ("voltage", round(rng.uniform(218.0, 232.0), 1), port),
            ("current", current, port),
            ("power", round(current * 225.0, 1), port),
            ("temperature", round(80.0 if port - 1 == hot else temperature, 2), port),
            ("relay", 1.0, port),
        ]
    readings.append(("ambient_temperature", round(node.ambient + rng.uniform(-0.1, 0.1), 2), None))
    return tuple(readings)


def _telemetry(spec: SimSpec, rng: random.Random) -> list[Planned]:
    out: list[Planned] = []
    period = spec.telemetry_interval_s
    # Each node at its own phase, within the run even when it is shorter than a period.
    first = min(period, spec.duration_s)
    for index, device_id in enumerate(spec.sensor_ids()):
        profile = spec.sensor_profile(index)
        node = _Node.draw(rng)
        for at in _periodic(rng.uniform(0, first) * 0.999, period, spec.duration_s):
            alarm = rng.random() < spec.alarm_ratio
            readings = (
                _smoke_readings(rng, node, alarm)
                if profile == "smoke_detector"
                else _charging_readings(rng, node, alarm)
            )
            out.append(TelemetrySend(at, device_id, profile, readings, alarm))
    for device_id in spec.esphome_ids():
        node = _Node.draw(rng)
        for at in _periodic(rng.uniform(0, first) * 0.999, period, spec.duration_s):
            alarm = rng.random() < spec.alarm_ratio
            states = tuple(
                (
                    "switch" if metric == "relay" else "sensor",
                    metric if port is None else f"port{port}_{metric}",
                    ("ON" if value else "OFF") if metric == "relay" else f"{value:.2f}",
                )
                for metric, value, port in _charging_readings(rng, node, alarm)
            )
            out.append(EsphomeSend(at, device_id, states, alarm))
    return out


def _heartbeats(spec: SimSpec, rng: random.Random) -> list[Planned]:
    period = spec.heartbeat_interval_s
    return [
        HeartbeatSend(at, device_id, period)
        for device_id in spec.camera_ids()
        for at in _periodic(rng.uniform(0, min(period, 1.0)), period, spec.duration_s)
    ]


def plan(spec: SimSpec) -> list[Planned]:
    """Every send of the run, ordered by time (ties: in the order generated, so a
    lifecycle's start precedes its updates). The same spec gives the same plan."""
    rng = random.Random(spec.seed)  # noqa: S311 - a load pattern, not a secret
    sends: list[Planned] = [
        *_heartbeats(spec, rng),
        *_lifecycles(spec, rng),
        *_telemetry(spec, rng),
    ]
    return sorted(sends, key=lambda s: s.at)


@dataclass(frozen=True)
class PlanSummary:
    """What a plan holds, for the live display's totals and for tests."""

    events: int
    lifecycles: int
    keys: int
    snapshots: int
    heartbeats: int
    batches: int
    esphome_rounds: int
    alarms: int


def summarise(sends: list[Planned]) -> PlanSummary:
    """Counts of a plan."""
    events = [s for s in sends if isinstance(s, EventSend)]
    return PlanSummary(
        events=len(events),
        lifecycles=sum(1 for s in events if s.phase is EventPhase.START),
        keys=len({(s.device_id, s.zone_id) for s in events}),
        snapshots=sum(1 for s in events if s.snapshot_id is not None),
        heartbeats=sum(1 for s in sends if isinstance(s, HeartbeatSend)),
        batches=sum(1 for s in sends if isinstance(s, TelemetrySend)),
        esphome_rounds=sum(1 for s in sends if isinstance(s, EsphomeSend)),
        alarms=sum(1 for s in sends if isinstance(s, TelemetrySend | EsphomeSend) and s.alarm),
    )
