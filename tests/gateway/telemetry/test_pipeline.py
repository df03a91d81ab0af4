"""Both ways in (TelemetryBatch and ESPHome topics) through one pipeline: stored points,
alerts, relay cut-offs and their confirmation, with a fake clock and a real SQLite store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from contract import EventPhase, TelemetryBatch, TelemetryPoint
from gateway.sla import TicketCategory
from gateway.telemetry import esphome
from gateway.telemetry.pipeline import SensorNode, TelemetryPipeline, UnknownNodeError
from gateway.telemetry.profiles import load_profiles
from gateway.telemetry.sqlite_store import SqliteTelemetryStore
from gateway.telemetry.wire import WireBatch, from_contract

PROFILES = load_profiles()
T0 = 1_800_000_000.0
NODES = {
    "shed-1": SensorNode("s1", "shed-1", PROFILES["charging_monitor"]),
    "shed-2": SensorNode("s1", "shed-2", PROFILES["charging_monitor"], esphome=True),
    "smoke-1": SensorNode("s1", "smoke-1", PROFILES["smoke_detector"], esphome=True),
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteTelemetryStore]:
    s = SqliteTelemetryStore(tmp_path / "telemetry.sqlite")
    yield s
    s.close()


@pytest.fixture
def pipeline() -> TelemetryPipeline:
    return TelemetryPipeline(NODES.get)


def batch(device: str, ts: float, points: list[tuple[str, float, dict[str, str]]]) -> WireBatch:
    return from_contract(
        TelemetryBatch(
            ts=ts,
            site_id="s1",
            device_id=device,
            sensor_kind="charging_monitor",
            points=[TelemetryPoint(metric=m, value=v, ts=ts, tags=t) for m, v, t in points],
        )
    )


def test_pipeline_batch_stores_flags_and_cuts_off(
    pipeline: TelemetryPipeline, store: SqliteTelemetryStore
) -> None:
    out = pipeline.batch(
        batch(
            "shed-1",
            T0,
            [
                ("port2_temperature", 75.0, {}),
                ("current", 2.1, {"port": "2"}),
                ("humidity", 50.0, {}),  # unknown metric
                ("port1_voltage", 400.0, {}),  # out of range
                ("ambient_temperature", 21.0, {}),
            ],
        ),
        T0,
    )
    assert sorted(out.flagged) == [
        "humidity: not a metric (or port) of charging_monitor",
        "port1_voltage 400 is above the valid maximum 260",
    ]
    [alert] = [a for a in out.alerts if a.category is TicketCategory.CHARGING_HAZARD]
    assert (alert.zone_id, alert.phase, alert.device_id) == (
        "port2_over_temperature",
        EventPhase.START,
        "shed-1",
    )
    [command] = out.commands
    assert command.topic == "guanjia/v1/s1/shed-1/cmd/relay"
    body = json.loads(command.payload)
    assert (body["name"], body["args"]) == ("relay", {"port": 2, "state": "off"})
    store.write(out.points)  # what the ingest stores once the batch committed
    assert {x.series for x in store.latest("shed-1")} == {
        "port2_temperature",
        "port2_current",
        "ambient_temperature",
    }
    # still hot: no second command, the condition re-asserted on the same event
    again = pipeline.batch(batch("shed-1", T0 + 10, [("port2_temperature", 76.0, {})]), T0 + 10)
    assert again.commands == []
    [held] = again.alerts
    assert (held.event_id, held.phase) == (alert.event_id, EventPhase.UPDATE)
    # the relay comes back off: confirmed
    done = pipeline.batch(batch("shed-1", T0 + 12, [("port2_relay", 0.0, {})]), T0 + 12)
    assert [c.after_s for c in done.confirmed] == [12.0]
    assert pipeline.tick(T0 + 60).overdue == []


def test_pipeline_esphome_cut_off_unconfirmed_is_overdue(pipeline: TelemetryPipeline) -> None:
    out = pipeline.esphome("esphome/s1/shed-2/sensor/port3_current/state", b"12.5", T0)
    [alert] = out.alerts
    assert alert.zone_id == "port3_over_current"
    [command] = out.commands
    assert (command.topic, command.payload) == (
        "esphome/s1/shed-2/switch/port3_relay/command",
        b"OFF",
    )
    # the charger's relay keeps reporting ON
    stuck = pipeline.esphome("esphome/s1/shed-2/switch/port3_relay/state", b"ON", T0 + 5)
    assert stuck.confirmed == []
    assert pipeline.tick(T0 + 9).overdue == []
    [late] = pipeline.tick(T0 + 10).overdue
    assert (late.device_id, late.port, late.condition) == ("shed-2", 3, "port3_over_current")
    assert pipeline.tick(T0 + 11).overdue == []


def test_pipeline_esphome_smoke_offline_and_bad_input(pipeline: TelemetryPipeline) -> None:
    [fire] = pipeline.esphome(
        "esphome/s1/smoke-1/binary_sensor/smoke_alarm/state", b"ON", T0
    ).alerts
    assert (fire.category, fire.zone_id) == (TicketCategory.FIRE_ALARM, "fire")
    [lwt] = pipeline.esphome("esphome/s1/smoke-1/status", b"offline", T0 + 1).alerts
    assert (lwt.category, lwt.phase) == (TicketCategory.DEVICE_OFFLINE, EventPhase.START)
    assert (
        pipeline.esphome("esphome/s1/smoke-1/sensor/temperature/state", b"nan", T0 + 2).alerts == []
    )
    flagged = pipeline.esphome("esphome/s1/smoke-1/sensor/lux/state", b"3", T0 + 3)
    assert flagged.flagged == ["lux: not a metric (or port) of smoke_detector"]
    with pytest.raises(UnknownNodeError):
        pipeline.esphome("esphome/s2/smoke-1/sensor/battery/state", b"50", T0)  # wrong site
    with pytest.raises(esphome.EsphomeError, match="not a number"):
        pipeline.esphome("esphome/s1/smoke-1/sensor/battery/state", b"full", T0)


def test_pipeline_offline_by_silence(pipeline: TelemetryPipeline) -> None:
    pipeline.esphome("esphome/s1/smoke-1/sensor/battery/state", b"80", T0)
    assert pipeline.tick(T0 + 179).alerts == []
    [off] = pipeline.tick(T0 + 180).alerts
    assert (off.category, off.zone_id) == (TicketCategory.DEVICE_OFFLINE, "offline")


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        ("esphome/s/d/sensor/port1_power/state", b"120.50", ("sensor", "port1_power", 120.5)),
        ("esphome/s/d/binary_sensor/tamper/state", b"OFF", ("binary_sensor", "tamper", 0.0)),
        ("esphome/s/d/switch/port2_relay/state", b"ON", ("switch", "port2_relay", 1.0)),
    ],
)
def test_esphome_parse_states(topic: str, payload: bytes, expected: tuple[str, str, float]) -> None:
    parsed = esphome.parse(topic, payload)
    assert isinstance(parsed, esphome.EsphomeState)
    assert (parsed.component, parsed.object_id, parsed.value) == expected


@pytest.mark.parametrize(
    ("topic", "payload", "problem"),
    [
        ("esphome/s/d/light/x/state", b"ON", "component 'light'"),
        ("esphome/s/d/sensor/x/state", b"inf", "not finite"),
        ("esphome/s/d/binary_sensor/x/state", b"on", "not ON or OFF"),
        ("esphome/s/d/status", b"maybe", "not 'online'"),
        ("esphome/s/d/sensor/x/command", b"1", "topic: not"),
    ],
)
def test_esphome_parse_refuses(topic: str, payload: bytes, problem: str) -> None:
    with pytest.raises(esphome.EsphomeError, match=problem):
        esphome.parse(topic, payload)
