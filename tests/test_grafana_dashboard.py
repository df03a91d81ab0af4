"""The shipped Grafana dashboard loads, points at the provisioned data source, and every
query it runs returns series from a real VictoriaMetrics that holds readings written the
way the gateway writes them (`gateway.telemetry.influx.InfluxWriter`, InfluxDB v2 API)."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.telemetry.influx import InfluxOptions, InfluxWriter
from gateway.telemetry.points import Point
from guanjia.sim.plan import EsphomeSend, SimSpec, TelemetrySend, plan
from tests.conftest import missing
from tests.support.victoria import VictoriaMetrics, victoria_binary

GRAFANA = Path(__file__).resolve().parent.parent / "docker" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "guanjia-telemetry.json"
SITE = "shed-site"


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _targets() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in _dashboard()["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def test_dashboard_uses_the_provisioned_data_source() -> None:
    sources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "victoriametrics.yaml").read_text()
    )
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus"
    dashboards = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "guanjia.yaml").read_text()
    )
    (provider,) = dashboards["providers"]
    compose = yaml.safe_load((GRAFANA.parent / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert source["url"] == "http://victoriametrics:8428"
    data = _dashboard()
    assert data["uid"]
    assert data["title"]
    panels = [p for p in data["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    for panel in panels:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"], panel["title"]
    titles = " ".join(p["title"].lower() for p in panels)
    assert "charging" in titles
    assert "smoke" in titles


@pytest.fixture
def victoria_with_readings(tmp_path: Path) -> Iterator[tuple[VictoriaMetrics, float]]:
    """VictoriaMetrics holding ten minutes of a simulated site's readings (smoke detectors,
    charging monitors, ESPHome charging monitors, some alarms), written by InfluxWriter."""
    if victoria_binary() is None:
        missing("the victoria-metrics binary (apt-get install victoria-metrics)")
    server = VictoriaMetrics(tmp_path / "victoria")
    server.start()
    spec = SimSpec(
        site_id=SITE,
        cameras=0,
        sensors=4,
        esphome=2,
        duration_s=600,
        telemetry_interval_s=10,
        alarm_ratio=0.2,
        seed=3,
    )
    start = time.time() - spec.duration_s - 30
    points: list[Point] = []
    for send in plan(spec):
        ts = start + send.at
        if isinstance(send, TelemetrySend):
            for metric, value, port in send.readings:
                series = metric if port is None else f"port{port}_{metric}"
                points.append(Point(SITE, send.device_id, series, value, ts))
        elif isinstance(send, EsphomeSend):
            for _, object_id, text in send.states:
                switch = {"ON": 1.0, "OFF": 0.0}.get(text)
                reading = float(text) if switch is None else switch
                points.append(Point(SITE, send.device_id, object_id, reading, ts))
    writer = InfluxWriter(
        InfluxOptions(url=server.url, org="guanjia", bucket="telemetry", token="unused")
    )
    writer.write(points)
    writer.close(timeout_s=30)
    assert writer.written == len(points)
    assert writer.dropped == 0
    server.export()  # forces a flush: what was written is searchable
    yield server, time.time()
    server.stop()


def _query_range(server: VictoriaMetrics, expr: str, end: float) -> dict[str, Any]:
    params = urllib.parse.urlencode(
        {"query": expr, "start": f"{end - 900:.0f}", "end": f"{end:.0f}", "step": "30s"}
    )
    with urllib.request.urlopen(f"{server.url}/api/v1/query_range?{params}", timeout=30) as resp:
        body: dict[str, Any] = json.loads(resp.read())
    return body


def _grafana_vars(expr: str, site: str) -> str:
    """What Grafana substitutes before sending a query (the site variable set to `site`)."""
    return expr.replace("$site", site).replace("$__rate_interval", "2m")


def test_every_dashboard_query_returns_series(
    victoria_with_readings: tuple[VictoriaMetrics, float],
) -> None:
    server, end = victoria_with_readings
    for title, expr in _targets():
        body = _query_range(server, _grafana_vars(expr, ".*"), end)
        assert body["status"] == "success", (title, body)
        assert body["data"]["result"], f"{title}: {expr} returned no series"


def test_dashboard_queries_honour_the_site_variable(
    victoria_with_readings: tuple[VictoriaMetrics, float],
) -> None:
    server, end = victoria_with_readings
    variable = _dashboard()["templating"]["list"][0]
    metric = variable["query"]["query"].removeprefix("label_values(").split(",")[0]
    query = urllib.parse.urlencode({"match[]": metric})
    with urllib.request.urlopen(
        f"{server.url}/api/v1/label/site/values?{query}", timeout=30
    ) as resp:
        assert json.loads(resp.read())["data"] == [SITE]
    for title, expr in _targets():
        body = _query_range(server, _grafana_vars(expr, "another-site"), end)
        assert body["data"]["result"] == [], title


def test_charging_panels_split_ports_from_detectors(
    victoria_with_readings: tuple[VictoriaMetrics, float],
) -> None:
    """Charging monitors' port temperatures carry a `port` label, smoke detectors' do not;
    a panel that mixed them would show detector readings as charging ports."""
    server, end = victoria_with_readings
    by_title = dict(_targets())
    ports = _query_range(server, _grafana_vars(by_title["Charging port temperature"], ".*"), end)
    assert all(series["metric"].get("port") for series in ports["data"]["result"])
    assert {s["metric"]["device"] for s in ports["data"]["result"]} == {
        "sim-sensor-002",
        "sim-sensor-004",
        "sim-esp-001",
        "sim-esp-002",
    }
    detectors = _query_range(server, _grafana_vars(by_title["Detector temperature"], ".*"), end)
    assert {s["metric"]["device"] for s in detectors["data"]["result"]} == {
        "sim-sensor-001",
        "sim-sensor-003",
    }
