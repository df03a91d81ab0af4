"""The telemetry API: a series in min/max/avg buckets and the latest values, site-scoped."""

from __future__ import annotations

from pathlib import Path

from gateway.store import Store
from gateway.telemetry.points import Point
from gateway.telemetry.settings import TelemetrySettings
from gateway.telemetry.sqlite_store import SqliteTelemetryStore
from tests.gateway.apphelpers import SITE, running_app, seed_users, settings_for, token

T0 = 1_800_000_000.0


def test_telemetry_api_buckets_latest_and_scope(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    seed_users(db)
    store = Store(db)
    store.devices.upsert_device("meter-1", SITE, "circuit")
    store.sensors.set_sensor_node("meter-1", "circuit_meter", esphome=False)
    store.close()
    path = tmp_path / "t.db"
    embedded = SqliteTelemetryStore(path)
    embedded.write([Point(SITE, "meter-1", "power", float(i), T0 + i) for i in range(180)])
    embedded.write([Point(SITE, "meter-1", "energy", 12.5, T0 + 100)])
    embedded.close()
    settings = settings_for(db, telemetry=TelemetrySettings(path=path))
    with running_app(settings) as client:
        op, other, worker = token(client, "op"), token(client, "op2"), token(client, "worker")
        url = "/api/devices/meter-1/metrics/power"
        got = client.get(url, params={"start": T0, "end": T0 + 180, "bucket_s": 60}, headers=op)
        assert got.status_code == 200, got.text
        assert [(b["min"], b["max"], b["avg"], b["count"]) for b in got.json()["buckets"]] == [
            (0, 59, 29.5, 60),
            (60, 119, 89.5, 60),
            (120, 179, 149.5, 60),
        ]
        latest = client.get("/api/devices/meter-1/latest", headers=op).json()
        assert [(x["series"], x["value"]) for x in latest] == [("energy", 12.5), ("power", 179.0)]
        # another site's operator sees nothing, not even that the device exists
        assert client.get("/api/devices/meter-1/latest", headers=other).status_code == 404
        assert client.get(url, headers=worker).status_code == 403
        too_many = client.get(
            url, params={"start": T0, "end": T0 + 86_400, "bucket_s": 1}, headers=op
        )
        assert too_many.status_code == 422
        assert "at most 2000 buckets" in too_many.text
        backwards = client.get(url, params={"start": T0, "end": T0 - 1}, headers=op)
        assert backwards.status_code == 422
        assert client.get("/api/devices/meter-1/metrics/Bad-Name", headers=op).status_code == 422
