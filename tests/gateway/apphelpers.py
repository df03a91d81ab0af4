"""Building a real app (TestClient runs its lifespan) with users of every role."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from fastapi.testclient import TestClient

from gateway.auth import Role, hash_password
from gateway.config import GatewaySettings
from gateway.main import create_app
from gateway.mqtt_settings import MqttSettings
from gateway.store import Store
from tests.support.migrated import migrate_fast

PASSWORD = "correct horse battery"
SITE = "site-1"
OTHER_SITE = "site-2"
USERS: dict[str, tuple[Role, list[str]]] = {
    "admin": (Role.ADMIN, ["*"]),
    "sup": (Role.SUPERVISOR, [SITE]),
    "op": (Role.OPERATOR, [SITE]),
    "worker": (Role.WORKER, [SITE]),
    "op2": (Role.OPERATOR, [OTHER_SITE]),
}


def settings_for(db_url: str, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "jwt_secret": "test-secret-" + "x" * 32,
        "ingest_enabled": False,
        "sla_tick_s": 3600.0,
        "webhook_tick_s": 3600.0,
        "mqtt": MqttSettings(),
    }
    values.update(overrides)
    return GatewaySettings(**values)


@cache
def password_hash() -> str:
    """One argon2 hash of PASSWORD for every seeded user and test (a hash costs ~0.2 s)."""
    return hash_password(PASSWORD)


def seed_users(db_url: str) -> None:
    migrate_fast(db_url)
    store = Store(db_url)
    hashed = password_hash()
    for name, (role, sites) in USERS.items():
        store.users.create_user(name, hashed, role, sites)
    store.close()


@contextmanager
def running_app(settings: GatewaySettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def token(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
