"""The site plan: what each simulated device sends and when (pure, table-tested)."""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict

import pytest

from contract import EventPhase
from guanjia.sim.plan import (
    EsphomeSend,
    EventSend,
    HeartbeatSend,
    Planned,
    SimSpec,
    TelemetrySend,
    plan,
    summarise,
)


def lifecycles(sends: list[Planned]) -> dict[str, list[EventSend]]:
    out: dict[str, list[EventSend]] = defaultdict(list)
    for s in sends:
        if isinstance(s, EventSend):
            out[s.event_id].append(s)
    return out


SPECS = {
    "default": SimSpec(),
    "busy": SimSpec(cameras=50, event_rate=20, duration_s=60, zones_per_camera=4, seed=7),
    "one camera": SimSpec(cameras=1, sensors=0, esphome=0, event_rate=5, zones_per_camera=2),
    "sensors only": SimSpec(cameras=0, sensors=6, esphome=3, telemetry_interval_s=2),
    "no events": SimSpec(event_rate=0),
    "short": SimSpec(duration_s=0.5, event_rate=50, dwell_s=(5, 10)),
}


@pytest.mark.parametrize("name", SPECS)
def test_plan_is_ordered_bounded_and_deterministic(name: str) -> None:
    spec = SPECS[name]
    sends = plan(spec)
    assert [s.at for s in sends] == sorted(s.at for s in sends)
    assert all(0 <= s.at <= spec.duration_s for s in sends)
    assert plan(spec) == sends
    assert plan(spec.model_copy(update={"seed": spec.seed + 1})) != sends or not sends


@pytest.mark.parametrize("name", SPECS)
def test_every_lifecycle_is_start_updates_end_in_order(name: str) -> None:
    spec = SPECS[name]
    for event_id, sends in lifecycles(plan(spec)).items():
        phases = [s.phase for s in sends]
        assert phases[0] is EventPhase.START, event_id
        assert phases[-1] is EventPhase.END, event_id
        assert set(phases[1:-1]) <= {EventPhase.UPDATE}, event_id
        assert [s.seq for s in sends] == list(range(len(sends)))
        assert len({(s.device_id, s.zone_id, s.category, s.started_at) for s in sends}) == 1
        # Updates every update_every_s from the start; the end comes at most that much later.
        gaps = [b.at - a.at for a, b in itertools.pairwise(sends[:-1])]
        assert all(math.isclose(g, spec.update_every_s) for g in gaps), gaps
        assert 0 < sends[-1].at - sends[-2].at <= spec.update_every_s + 1e-9
        assert sends[-1].at <= spec.duration_s


@pytest.mark.parametrize("name", SPECS)
def test_a_zone_has_one_lifecycle_at_a_time(name: str) -> None:
    by_key: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for sends in lifecycles(plan(SPECS[name])).values():
        by_key[(sends[0].device_id, sends[0].zone_id)].append((sends[0].at, sends[-1].at))
    for key, spans in by_key.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start > end, key


@pytest.mark.parametrize(
    ("spec", "heartbeats_each"),
    [
        (SimSpec(cameras=3, duration_s=30, heartbeat_interval_s=10), 3),
        (SimSpec(cameras=2, duration_s=30.5, heartbeat_interval_s=10), {3, 4}),
        (SimSpec(cameras=1, duration_s=5, heartbeat_interval_s=10), 1),
        (SimSpec(cameras=0, duration_s=30), None),
    ],
)
def test_heartbeats_per_camera(spec: SimSpec, heartbeats_each: int | set[int] | None) -> None:
    counts = Counter(s.device_id for s in plan(spec) if isinstance(s, HeartbeatSend))
    if heartbeats_each is None:
        assert not counts
        return
    assert set(counts) == set(spec.camera_ids())
    allowed = heartbeats_each if isinstance(heartbeats_each, set) else {heartbeats_each}
    assert set(counts.values()) <= allowed


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # (sensors, esphome nodes, interval, duration) -> batches per node, rounds per node
        (SimSpec(cameras=0, sensors=4, esphome=0, telemetry_interval_s=10, duration_s=60), (6, 0)),
        (SimSpec(cameras=0, sensors=0, esphome=2, telemetry_interval_s=5, duration_s=20), (0, 4)),
        (SimSpec(cameras=0, sensors=1, esphome=1, telemetry_interval_s=30, duration_s=10), (1, 1)),
    ],
)
def test_telemetry_per_node(spec: SimSpec, expected: tuple[int, int]) -> None:
    sends = plan(spec)
    batches = Counter(s.device_id for s in sends if isinstance(s, TelemetrySend))
    rounds = Counter(s.device_id for s in sends if isinstance(s, EsphomeSend))
    assert set(batches.values()) <= {expected[0]}
    assert set(rounds.values()) <= {expected[1]}
    assert len(batches) == (spec.sensors if expected[0] else 0)
    assert len(rounds) == (spec.esphome if expected[1] else 0)


def test_sensor_profiles_alternate_and_charging_ports_are_tagged() -> None:
    spec = SimSpec(cameras=0, sensors=2, esphome=1, duration_s=10, telemetry_interval_s=10)
    batches = {s.device_id: s for s in plan(spec) if isinstance(s, TelemetrySend)}
    smoke, charging = batches[spec.sensor_ids()[0]], batches[spec.sensor_ids()[1]]
    assert smoke.sensor_kind == "smoke_detector"
    assert {m for m, _, _ in smoke.readings} >= {"smoke_alarm", "smoke_obscuration"}
    assert charging.sensor_kind == "charging_monitor"
    assert {p for _, _, p in charging.readings} == {1, 2, 3, 4, None}
    (esp,) = [s for s in plan(spec) if isinstance(s, EsphomeSend)]
    assert ("switch", "port1_relay", "ON") in esp.states
    assert any(obj == "port3_temperature" for _, obj, _ in esp.states)


@pytest.mark.parametrize(
    ("ratio", "check"),
    [
        (0.0, lambda n, total: n == 0),
        (1.0, lambda n, total: n == total),
        (0.5, lambda n, t: 0 < n < t),
    ],
)
def test_alarm_and_snapshot_ratios(ratio: float, check: object) -> None:
    spec = SimSpec(
        cameras=5,
        sensors=10,
        esphome=2,
        duration_s=120,
        event_rate=2,
        snapshot_ratio=ratio,
        alarm_ratio=ratio,
        seed=11,
    )
    sends = plan(spec)
    summary = summarise(sends)
    assert callable(check)
    assert check(summary.snapshots, summary.lifecycles)
    assert check(summary.alarms, summary.batches + summary.esphome_rounds)
    alarms = [s for s in sends if isinstance(s, TelemetrySend) and s.alarm]
    for batch in alarms:
        values = {(m, p): v for m, v, p in batch.readings}
        hot = values.get(("smoke_alarm", None)) == 1.0 or any(
            v >= 70 for (m, _), v in values.items() if m == "temperature"
        )
        assert hot, batch


def test_key_spread_is_skewed_over_cameras_and_mixes_zones() -> None:
    spec = SimSpec(cameras=40, event_rate=2, duration_s=600, dwell_s=(1, 2), seed=5)
    starts = [s for s in plan(spec) if isinstance(s, EventSend) and s.phase is EventPhase.START]
    per_camera = Counter(s.device_id for s in starts)
    top = per_camera.most_common(1)[0][1]
    assert top > 4 * (len(starts) / spec.cameras)  # the busiest camera sees far more than average
    assert len(per_camera) > spec.cameras / 2  # and the long tail still sees some
    assert len({s.zone_id for s in starts}) == spec.zones_per_camera
    # a uniform spread (skew 0) has no such hot camera
    flat = spec.model_copy(update={"skew": 0.0})
    flat_starts = Counter(
        s.device_id for s in plan(flat) if isinstance(s, EventSend) and s.phase is EventPhase.START
    )
    assert flat_starts.most_common(1)[0][1] < 2.5 * (sum(flat_starts.values()) / flat.cameras)


def test_event_rate_is_what_was_asked() -> None:
    spec = SimSpec(cameras=200, event_rate=10, duration_s=200, dwell_s=(1, 2), seed=1)
    lifecycles_started = summarise(plan(spec)).lifecycles
    assert 0.85 * 2000 < lifecycles_started <= 1.15 * 2000


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"dwell_s": (5, 1)}, "dwell_s"),
        ({"cameras": -1}, "cameras"),
        ({"site_id": "a/b"}, "site_id"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_spec_refuses_bad_fields(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimSpec.model_validate(fields)
