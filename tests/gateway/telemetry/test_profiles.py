"""Device profiles: every shipped profile loads; bad ones fail in one line naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.sla import TicketCategory
from gateway.telemetry.profiles import (
    PROFILES_DIR,
    ProfileError,
    load_profile,
    load_profiles,
    parse_profile,
)


def test_profiles_every_shipped_file_loads() -> None:
    profiles = load_profiles()
    assert set(profiles) == {p.stem for p in PROFILES_DIR.glob("*.yaml")}
    assert {"smoke_detector", "charging_monitor", "circuit_meter"} <= set(profiles)
    smoke = profiles["smoke_detector"]
    assert {r.category for r in smoke.rules if r.metric == "smoke_alarm"} == {
        TicketCategory.FIRE_ALARM
    }
    charging = profiles["charging_monitor"]
    assert charging.relay is not None
    assert all(r.cut_off for r in charging.rules if r.category is TicketCategory.CHARGING_HAZARD)


@pytest.mark.parametrize(
    ("wire", "tag", "expected"),
    [
        ("port2_temperature", None, ("temperature", 2)),
        ("temperature", "4", ("temperature", 4)),
        ("ambient_temperature", None, ("ambient_temperature", None)),
        ("port5_temperature", None, None),  # only 4 ports
        ("port0_current", None, None),
        ("temperature", None, None),  # a per-port metric needs its port
        ("ambient_temperature", "1", None),  # and a shed metric has none
        ("temperature", "x", None),
        ("humidity", None, None),
    ],
)
def test_profiles_resolve_wire_names(
    wire: str, tag: str | None, expected: tuple[str, int | None] | None
) -> None:
    assert load_profiles()["charging_monitor"].resolve(wire, tag) == expected


BASE = {
    "name": "x",
    "sensor_kind": "x",
    "reporting_interval_s": 10,
    "metrics": [{"name": "temperature", "unit": "C", "min": -40, "max": 125}],
}


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"colour": "red"}, "colour", "unknown key"),
        ({"reporting_interval_s": 0}, "reporting_interval_s", "greater than 0"),
        (
            {
                "rules": [
                    {
                        "type": "threshold",
                        "metric": "tmp",
                        "above": 1,
                        "clear_at": 0,
                        "condition": "c",
                        "category": "fire_alarm",
                    }
                ]
            },
            "(top level)",
            "'tmp' is not a metric",
        ),
        (
            {
                "rules": [
                    {
                        "type": "threshold",
                        "metric": "temperature",
                        "above": 50,
                        "clear_at": 60,
                        "condition": "c",
                        "category": "fire_alarm",
                    }
                ]
            },
            "rules.0.threshold",
            "hysteresis",
        ),
        (
            {
                "rules": [
                    {
                        "type": "threshold",
                        "metric": "temperature",
                        "above": 50,
                        "clear_at": 40,
                        "condition": "c",
                        "category": "fire_alarm",
                        "cut_off": True,
                    }
                ]
            },
            "(top level)",
            "cut_off needs a relay",
        ),
        ({"metrics": [{"name": "t", "min": 5, "max": 1}]}, "metrics.0", "min must be below"),
        (
            {
                "rules": [
                    {
                        "type": "threshold",
                        "metric": "temperature",
                        "above": 60,
                        "clear_at": 50,
                        "condition": "c",
                        "category": "fire_alarm",
                    },
                    {
                        "type": "threshold",
                        "metric": "temperature",
                        "above": 50,
                        "clear_at": 40,
                        "condition": "c",
                        "category": "sensor_fault",
                    },
                ]
            },
            "(top level)",
            "every rule of a condition has one category",
        ),
    ],
)
def test_profiles_bad_profile_one_line_error(
    change: dict[str, object], field: str, problem: str
) -> None:
    with pytest.raises(ProfileError) as err:
        parse_profile({**BASE, **change}, "p.yaml")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"p.yaml: {field}: ")
    assert problem in message


def test_profiles_file_name_must_match(tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text(
        (PROFILES_DIR / "circuit_meter.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    with pytest.raises(ProfileError, match=r"other.yaml: name: must equal"):
        load_profiles(tmp_path)
    (tmp_path / "broken.yaml").write_text("a: [", encoding="utf-8")
    with pytest.raises(ProfileError, match=r"broken.yaml: \(file\): "):
        load_profile(tmp_path / "broken.yaml")
