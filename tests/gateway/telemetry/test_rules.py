"""The profile rules as pure functions of readings and a fake clock (table tests)."""

from __future__ import annotations

import pytest

from contract import EventPhase, Severity
from gateway.alerts import dedup_key
from gateway.sla import TicketCategory
from gateway.telemetry.alerts import transition_alert
from gateway.telemetry.cutoff import CutoffTracker
from gateway.telemetry.profiles import load_profiles
from gateway.telemetry.rules import DeviceRules, Reading, Transition

PROFILES = load_profiles()
T0 = 1_800_000_000.0


def run(profile: str, steps: list[tuple[float, str, float, int | None]]) -> list[str]:
    """Feed (dt, metric, value, port) readings; the transitions as 'condition+' / 'condition-'."""
    rules = DeviceRules(PROFILES[profile], T0)
    seen: list[str] = []
    for dt, metric, value, port in steps:
        now = T0 + dt
        for t in rules.observe([Reading(metric, value, now, port)], now):
            seen.append(f"{t.condition}{'+' if t.active else '-'}")
    return seen


CASES = [
    # smoke alarm fires at once, one transition however many alarm readings follow
    ("smoke_detector", [(0, "smoke_alarm", 1, None), (60, "smoke_alarm", 1, None)], ["fire+"]),
    (
        "smoke_detector",
        [(0, "smoke_alarm", 1, None), (60, "smoke_alarm", 0, None)],
        ["fire+", "fire-"],
    ),
    # obscuration with hysteresis: 4 fires, 3 holds (above clear_at 2), 1.5 clears
    (
        "smoke_detector",
        [
            (0, "smoke_obscuration", 3.9, None),
            (60, "smoke_obscuration", 4.0, None),
            (120, "smoke_obscuration", 3.0, None),
            (180, "smoke_obscuration", 4.5, None),
            (240, "smoke_obscuration", 1.5, None),
        ],
        ["fire+", "fire-"],
    ),
    # two rules on one condition: the fire stays until both clear
    (
        "smoke_detector",
        [
            (0, "smoke_alarm", 1, None),
            (10, "smoke_obscuration", 5.0, None),
            (20, "smoke_alarm", 0, None),
            (30, "smoke_obscuration", 1.0, None),
        ],
        ["fire+", "fire-"],
    ),
    # heat: static threshold, and rate of rise (8.3 C/min) while still cool
    (
        "smoke_detector",
        [(0, "temperature", 56.9, None), (60, "temperature", 57.0, None)],
        ["fire+"],
    ),
    (
        "smoke_detector",
        [
            (0, "temperature", 22, None),
            (30, "temperature", 27, None),
            (60, "temperature", 31, None),
        ],
        ["fire+"],
    ),
    (
        "smoke_detector",
        [
            (0, "temperature", 22, None),
            (30, "temperature", 25, None),
            (60, "temperature", 28, None),
        ],
        [],
    ),
    # CO, low battery (below 20, clears above 30), tamper
    (
        "smoke_detector",
        [
            (0, "co_ppm", 49, None),
            (60, "co_ppm", 60, None),
            (120, "co_ppm", 35, None),
            (180, "co_ppm", 29, None),
        ],
        ["carbon_monoxide+", "carbon_monoxide-"],
    ),
    (
        "smoke_detector",
        [
            (0, "battery", 21, None),
            (60, "battery", 19, None),
            (120, "battery", 25, None),
            (180, "battery", 31, None),
        ],
        ["low_battery+", "low_battery-"],
    ),
    ("smoke_detector", [(0, "tamper", 1, None), (60, "tamper", 0, None)], ["tamper+", "tamper-"]),
    # stuck: the same temperature for 12 h, then a change clears it
    (
        "smoke_detector",
        [(h * 3600.0, "temperature", 21.5, None) for h in range(13)]
        + [(13 * 3600.0, "temperature", 21.7, None)],
        ["stuck_temperature+", "stuck_temperature-"],
    ),
    # out of range: flagged, kept from the rules (a 200 C glitch is not a fire)
    (
        "smoke_detector",
        [(0, "temperature", 200, None), (60, "temperature", 20, None)],
        ["out_of_range_temperature+", "out_of_range_temperature-"],
    ),
    ("smoke_detector", [(0, "smoke_alarm", 0.5, None)], ["out_of_range_smoke_alarm+"]),
    # charging: per-port conditions, over-temperature and over-current
    (
        "charging_monitor",
        [
            (0, "temperature", 69, 2),
            (10, "temperature", 71, 2),
            (20, "temperature", 80, 1),
            (30, "temperature", 60, 2),
            (40, "temperature", 54, 2),
        ],
        ["port2_over_temperature+", "port1_over_temperature+", "port2_over_temperature-"],
    ),
    (
        "charging_monitor",
        [
            (0, "temperature", 30, 3),
            (20, "temperature", 35, 3),
            (40, "temperature", 39, 3),
            (60, "temperature", 41, 3),
        ],
        ["port3_over_temperature+"],
    ),
    (
        "charging_monitor",
        [
            (0, "current", 9.9, 1),
            (10, "current", 10.5, 1),
            (20, "current", 9, 1),
            (30, "current", 7.9, 1),
        ],
        ["port1_over_current+", "port1_over_current-"],
    ),
]


@pytest.mark.parametrize(("profile", "steps", "expected"), CASES)
def test_rules_table(
    profile: str, steps: list[tuple[float, str, float, int | None]], expected: list[str]
) -> None:
    assert run(profile, steps) == expected


def test_rules_cut_off_flag_and_severity() -> None:
    rules = DeviceRules(PROFILES["charging_monitor"], T0)
    [t] = rules.observe([Reading("temperature", 75, T0, 4)], T0)
    assert (t.category, t.severity, t.cut_off, t.port) == (
        TicketCategory.CHARGING_HAZARD,
        Severity.URGENT,
        True,
        4,
    )
    [fire] = rules.observe([Reading("smoke_alarm", 1, T0 + 1)], T0 + 1)
    assert (fire.category, fire.cut_off) == (TicketCategory.FIRE_ALARM, False)


def test_rules_offline_by_silence_and_by_last_will() -> None:
    profile = PROFILES["smoke_detector"]  # 60 s x 3
    rules = DeviceRules(profile, T0)
    assert rules.check_offline(T0 + 179) == []
    [off] = rules.check_offline(T0 + 180)
    assert (off.condition, off.active, off.category) == (
        "offline",
        True,
        TicketCategory.DEVICE_OFFLINE,
    )
    assert rules.check_offline(T0 + 500) == []  # once
    [back] = rules.observe([Reading("battery", 90, T0 + 600)], T0 + 600)
    assert (back.condition, back.active, back.started_at) == ("offline", False, T0 + 180)
    [lwt] = rules.availability(False, T0 + 610)
    assert lwt.active
    assert "last will" in lwt.reason
    assert rules.availability(False, T0 + 611) == []
    [online] = rules.availability(True, T0 + 620)
    assert not online.active


def test_rules_transition_alert_one_ticket_per_condition() -> None:
    t_start = Transition(
        "port2_over_temperature",
        TicketCategory.CHARGING_HAZARD,
        Severity.URGENT,
        True,
        T0,
        T0,
        "port2_temperature 75 >= 70",
        2,
        True,
    )
    t_end = Transition(
        "port2_over_temperature",
        TicketCategory.CHARGING_HAZARD,
        Severity.NORMAL,
        False,
        T0 + 60,
        T0,
        "clear",
        2,
    )
    start = transition_alert("s1", "shed-1", "charging_monitor", t_start)
    end = transition_alert("s1", "shed-1", "charging_monitor", t_end)
    assert start.event_id == end.event_id
    assert (start.phase, end.phase) == (EventPhase.START, EventPhase.END)
    assert start.msg_id != end.msg_id
    assert start.dedup_key == dedup_key(
        "s1", "shed-1", TicketCategory.CHARGING_HAZARD, "port2_over_temperature"
    )
    assert start.detail["cut_off"] == "requested"


def test_cutoff_confirmed_by_relay_off() -> None:
    tracker = CutoffTracker()
    cut = tracker.request(
        "s1", "shed-1", 2, condition="c", category="charging_hazard", now=T0, confirm_within_s=10
    )
    assert cut is not None
    assert (
        tracker.request(
            "s1",
            "shed-1",
            2,
            condition="c",
            category="charging_hazard",
            now=T0 + 1,
            confirm_within_s=10,
        )
        is None
    )
    assert tracker.relay_state("shed-1", 2, True, T0 + 2) is None  # still on
    assert tracker.relay_state("shed-1", 3, False, T0 + 2) is None  # another port
    confirmed = tracker.relay_state("shed-1", 2, False, T0 + 3)
    assert confirmed is not None
    assert confirmed.after_s == 3
    assert tracker.overdue(T0 + 100) == []


def test_cutoff_unconfirmed_is_overdue_once() -> None:
    tracker = CutoffTracker()
    cut = tracker.request(
        "s1", "shed-1", 1, condition="c", category="charging_hazard", now=T0, confirm_within_s=10
    )
    assert tracker.overdue(T0 + 9.9) == []
    assert tracker.overdue(T0 + 10) == [cut]
    assert tracker.overdue(T0 + 20) == []
    assert tracker.pending() == [cut]


def test_rules_shared_condition_clears_when_the_last_rule_does() -> None:
    rules = DeviceRules(PROFILES["smoke_detector"], T0)
    assert [t.active for t in rules.observe([Reading("smoke_alarm", 1, T0)], T0)] == [True]
    assert rules.observe([Reading("smoke_obscuration", 5.0, T0 + 10)], T0 + 10) == []
    # the alarm resets but obscuration is still over its clear level: the fire goes on
    assert rules.observe([Reading("smoke_alarm", 0, T0 + 20)], T0 + 20) == []
    [end] = rules.observe([Reading("smoke_obscuration", 1.0, T0 + 30)], T0 + 30)
    assert (end.active, end.ts, end.started_at) == (False, T0 + 30, T0)


def test_rules_circuit_meter_indoor_charging_opens_and_clears() -> None:
    from tests.gateway.telemetry.test_signature import charger, curve

    samples = curve(23.0, 4.0, charger(on_at_s=700, cc_s=3600, plateau_w=250))
    rules = DeviceRules(PROFILES["circuit_meter"], samples[0][0])
    seen = [
        (t.condition, t.active, t.category)
        for ts, watts in samples
        for t in rules.observe([Reading("power", watts, ts)], ts)
    ]
    assert seen == [
        ("indoor_charging", True, TicketCategory.INDOOR_CHARGING),
        ("indoor_charging", False, TicketCategory.INDOOR_CHARGING),
    ]
