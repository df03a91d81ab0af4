"""Bad input is answered in one line naming the field and what is allowed, never with the
rejected input echoed back (FastAPI's default: a JSON list of every error with its input, a
new user's password included); console forms get the console's error page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.api.errors import MAX_ERRORS, one_line
from gateway.main import create_app
from gateway.store import Store
from gateway.telemetry.settings import TelemetrySettings
from tests.gateway.apphelpers import SITE, seed_users, settings_for, token
from tests.gateway.test_api_roles import console_headers

SHORT_PASSWORD = "hunter2!x"  # 9 characters: under the minimum of 10


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    seed_users(sqlite_url)
    with TestClient(create_app(settings_for(sqlite_url))) as app_client:
        yield app_client


def test_an_invalid_body_is_one_line_without_the_input(client: TestClient) -> None:
    admin = token(client, "admin")
    body = {"username": "new-op", "password": SHORT_PASSWORD, "role": "operator", "sites": ["s"]}
    r = client.post("/api/users", headers=admin, json=body)
    assert r.status_code == 422
    assert r.json() == {"detail": "password: String should have at least 10 characters"}
    assert SHORT_PASSWORD not in r.text
    r = client.get("/api/tickets", headers=admin, params={"limit": "lots"})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("limit: Input should be a valid integer")
    r = client.post(
        "/api/login",
        content=b'{"username": "admin", "pass',
        headers={"Content-Type": "application/json"},
    )
    assert r.json() == {"detail": "body: not valid JSON"}


def test_several_errors_share_the_line_and_the_rest_are_counted() -> None:
    errors = [
        {"loc": ("body", "items", n, "name"), "msg": "Field\nrequired", "input": "secret"}
        for n in range(MAX_ERRORS + 2)
    ]
    line = one_line(errors)
    assert "\n" not in line
    assert "secret" not in line
    assert line.startswith("items[0].name: Field required; items[1].name: Field required")
    assert line.endswith("; and 2 more")


def test_a_console_form_with_bad_input_gets_the_error_page(client: TestClient) -> None:
    r = client.get("/console/lang", params={"lang": "fr"}, headers=console_headers(None))
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("text/html")
    assert "<!doctype html>" in r.text


def test_a_telemetry_range_bound_that_is_not_a_number_is_refused(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    seed_users(db)
    store = Store(db)
    store.devices.upsert_device("meter-1", SITE, "circuit")
    store.sensors.set_sensor_node("meter-1", "circuit_meter", esphome=False)
    store.close()
    settings = settings_for(db, telemetry=TelemetrySettings(path=tmp_path / "t.db"))
    with TestClient(create_app(settings)) as client:
        op = token(client, "op")
        url = "/api/devices/meter-1/metrics/power"
        for bounds in ({"start": "nan"}, {"end": "nan"}, {"start": "nan", "end": "nan"}):
            r = client.get(url, params=bounds, headers=op)
            assert r.status_code == 422, (bounds, r.text)
            assert r.json()["detail"].startswith(next(iter(bounds)) + ": ")
        assert client.get(url, headers=op).status_code == 200
