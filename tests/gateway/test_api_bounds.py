"""Integer path and query parameters are bounded (issue 8, finding 4, API half).

Ids live in 32-bit Integer columns and offsets go into SQL: a value the database cannot hold
(2^31 on PostgreSQL's integer, 2^63 on SQLite's) must answer 422, never 500.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

import contract as c
from gateway.ingest import IngestHandler
from gateway.main import create_app
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store
from tests.gateway.apphelpers import SITE, seed_users, settings_for, token
from tests.gateway.factories import event, seed_site, topic_of

HUGE = [2**31, 2**63, 2**70, -(2**63)]

# (method, url with {n} where the huge value goes)
PARAMETERS = [
    ("GET", "/api/tickets/{n}"),
    ("POST", "/api/tickets/{n}/acknowledge"),
    ("POST", "/api/tickets/{n}/dispatch"),
    ("POST", "/api/tickets/{n}/close"),
    ("GET", "/api/tickets/{n}/snapshots/snap-1"),
    ("GET", "/api/tickets/{n}/attachments/1"),
    ("GET", "/api/tickets/1/attachments/{n}"),
    ("GET", "/api/tickets?offset={n}"),
    ("GET", "/api/devices?offset={n}"),
    ("GET", "/api/devices/cam-a/commands?offset={n}"),
    ("GET", "/api/dead-letters?offset={n}"),
]


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    seed_users(db_url)
    store = Store(db_url)
    seed_site(store, SITE, ("cam-a",))
    now = time.time()
    message = event(SITE, "cam-a", "ev-bounds-0001", ts=now)
    IngestHandler(store, dict(DEFAULT_POLICIES)).handle(topic_of(message), c.encode(message), now)
    store.close()
    # A 500 must show up as a status here, not as an exception out of the client.
    with TestClient(create_app(settings_for(db_url)), raise_server_exceptions=False) as test:
        yield test


def test_huge_integers_answer_422_not_500(client: TestClient) -> None:
    admin = token(client, "admin")
    answers = {
        (method, url.format(n=n)): client.request(method, url.format(n=n), headers=admin)
        for method, url in PARAMETERS
        for n in HUGE
    }
    wrong = {
        key: (r.status_code, r.text[:120]) for key, r in answers.items() if r.status_code != 422
    }
    assert wrong == {}
    # In range, the same routes still work.
    assert client.get("/api/tickets/1", headers=admin).status_code == 200
    assert client.get("/api/tickets?offset=2147483647", headers=admin).json()["items"] == []
    assert client.get("/api/devices?offset=2147483647", headers=admin).json() == []


def test_strings_longer_than_their_columns_answer_422(client: TestClient) -> None:
    admin = token(client, "admin")
    long_url = "http://127.0.0.1:9/" + "x" * 600
    for body in (
        {"url": long_url, "flavour": "wecom"},
        {"url": "http://127.0.0.1:9/x", "flavour": "wecom", "grid_id": "g" * 65},
        {"url": "http://127.0.0.1:9/x", "flavour": "wecom", "grid_id": "no-such-grid"},
    ):
        r = client.post("/api/webhooks", headers=admin, json=body)
        assert r.status_code == 422, (body, r.status_code, r.text[:200])
    grid = {"grid_id": "g-x", "site_id": SITE, "name": "X", "supervisor": "s" * 300}
    assert client.put("/api/grids/g-x", headers=admin, json=grid).status_code == 422
    shift = {"username": "u" * 300, "starts_at": 0, "ends_at": 1}
    assert client.post(f"/api/grids/g-{SITE}/shifts", headers=admin, json=shift).status_code == (
        422
    )
