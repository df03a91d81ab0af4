"""The REST API on a real database: login, tickets lifecycle with photos, scoping."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

import contract as c
from gateway.ingest import IngestHandler
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store
from tests.gateway.apphelpers import PASSWORD, SITE, running_app, seed_users, settings_for, token
from tests.gateway.factories import event, seed_site, topic_of
from tests.gateway.imagedata import encoded

JPEG = encoded(".jpg")


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    seed_users(db_url)
    store = Store(db_url)
    seed_site(store, SITE, ("cam-a",))
    seed_site(store, "site-2", ("cam-z",))
    handler = IngestHandler(store, dict(DEFAULT_POLICIES))
    now = time.time()
    for site, device in ((SITE, "cam-a"), ("site-2", "cam-z")):
        message = event(site, device, f"ev-{device}-0001", ts=now)
        handler.handle(topic_of(message), c.encode(message), now)
    store.close()
    with running_app(settings_for(db_url)) as test_client:
        yield test_client


def test_login_wrong_password_then_rate_limited(client: TestClient) -> None:
    for _ in range(5):
        r = client.post("/api/login", json={"username": "op", "password": "nope"})
        assert r.status_code == 401
    r = client.post("/api/login", json={"username": "op", "password": PASSWORD})
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0
    assert client.post("/api/login", json={"username": "ghost", "password": "x"}).status_code == 401


def test_tokens_are_checked(client: TestClient) -> None:
    assert client.get("/api/tickets").status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert client.get("/api/tickets", headers=bad).status_code == 401
    assert client.get("/api/me", headers=token(client, "sup")).json()["role"] == "supervisor"


def test_ticket_lifecycle_through_api_with_photo_and_audit(client: TestClient) -> None:
    op, worker, sup = token(client, "op"), token(client, "worker"), token(client, "sup")
    page = client.get("/api/tickets", headers=op).json()
    assert page["total"] == 1  # site-2's ticket is out of the operator's scope
    tid = page["items"][0]["id"]
    assert client.post(f"/api/tickets/{tid}/start", headers=worker).status_code == 403  # not theirs
    assert (
        client.post(f"/api/tickets/{tid}/start", headers=sup).status_code == 409
    )  # not dispatched
    assert client.post(f"/api/tickets/{tid}/acknowledge", headers=op).json()["state"] == (
        "acknowledged"
    )
    r = client.post(f"/api/tickets/{tid}/dispatch", headers=op, json={})
    assert r.status_code == 409
    assert "assignee" in r.json()["detail"]
    r = client.post(f"/api/tickets/{tid}/dispatch", headers=op, json={"assignee": "worker"})
    assert r.json()["assignee"] == "worker"
    assert client.post(f"/api/tickets/{tid}/start", headers=worker).json()["state"] == (
        "in_progress"
    )
    r = client.post(f"/api/tickets/{tid}/resolve", headers=worker, json={"note": "towed"})
    assert r.status_code == 409
    assert "photo" in r.json()["detail"]
    files = {"file": ("site.jpg", JPEG, "image/jpeg")}
    r = client.post(f"/api/tickets/{tid}/photos", headers=worker, files=files)
    assert r.status_code == 201
    assert client.get(r.json()["url"], headers=sup).content == JPEG
    bad = {"file": ("x.txt", b"hello", "text/plain")}
    assert client.post(f"/api/tickets/{tid}/photos", headers=worker, files=bad).status_code == 415
    r = client.post(f"/api/tickets/{tid}/resolve", headers=worker, json={"note": "towed"})
    assert r.json()["state"] == "resolved"
    assert client.post(f"/api/tickets/{tid}/close", headers=op).json()["state"] == "closed"
    r = client.post(f"/api/tickets/{tid}/reopen", headers=op, json={"note": "car is back"})
    assert r.json()["state"] == "new"
    detail = client.get(f"/api/tickets/{tid}", headers=sup).json()
    actions = [(a["actor"], a["action"]) for a in detail["audit"]]
    assert actions == [
        ("system:ingest", "open"),
        ("op", "acknowledge"),
        ("op", "dispatch"),
        ("worker", "start"),
        ("worker", "photo"),
        ("worker", "resolve"),
        ("op", "close"),
        ("op", "reopen"),
    ]
    assert detail["evidence"][0]["phase"] == "start"


def test_ticket_list_filter_sort_paginate_and_scope(client: TestClient) -> None:
    admin = token(client, "admin")
    assert client.get("/api/tickets", headers=admin).json()["total"] == 2
    r = client.get("/api/tickets", headers=admin, params={"site_id": "site-2"}).json()
    assert [t["site_id"] for t in r["items"]] == ["site-2"]
    r = client.get("/api/tickets", headers=admin, params={"sort": "id", "limit": 1, "offset": 1})
    assert r.json()["total"] == 2
    assert len(r.json()["items"]) == 1
    assert client.get("/api/tickets", headers=admin, params={"sort": "nope"}).status_code == 422
    r = client.get("/api/tickets", headers=admin, params={"state": "closed"}).json()
    assert r["total"] == 0
    op2 = token(client, "op2")
    site1_ticket = client.get("/api/tickets", headers=token(client, "op")).json()["items"][0]
    assert client.get(f"/api/tickets/{site1_ticket['id']}", headers=op2).status_code == 404
    assert client.get("/api/tickets", headers=op2, params={"site_id": SITE}).status_code == 404


def test_worker_acts_only_on_own_tickets(client: TestClient) -> None:
    op, worker = token(client, "op"), token(client, "worker")
    tid = client.get("/api/tickets", headers=op).json()["items"][0]["id"]
    client.post(f"/api/tickets/{tid}/dispatch", headers=op, json={"assignee": "someone-else"})
    r = client.post(f"/api/tickets/{tid}/start", headers=worker)
    assert r.status_code == 403


def test_users_grids_shifts_and_metrics(client: TestClient) -> None:
    admin, sup = token(client, "admin"), token(client, "sup")
    r = client.post(
        "/api/users",
        headers=admin,
        json={"username": "w2", "password": "another long pw", "role": "worker", "sites": [SITE]},
    )
    assert r.status_code == 201
    assert "password" not in r.text
    assert (
        client.post(
            "/api/users",
            headers=admin,
            json={
                "username": "w2",
                "password": "another long pw",
                "role": "worker",
                "sites": [SITE],
            },
        ).status_code
        == 409
    )
    grid = {
        "grid_id": "g-new",
        "site_id": SITE,
        "name": "North",
        "supervisor": "sup",
        "zones": ["zone-n"],
    }
    assert client.put("/api/grids/g-new", headers=sup, json=grid).json()["zones"] == ["zone-n"]
    other = dict(grid, grid_id="g-x", site_id="site-2")
    assert client.put("/api/grids/g-x", headers=sup, json=other).status_code == 404
    r = client.post(
        "/api/grids/g-new/shifts",
        headers=sup,
        json={"username": "w2", "starts_at": 0, "ends_at": 4e9},
    )
    assert r.status_code == 201
    assert [s["username"] for s in client.get("/api/grids/g-new/shifts", headers=sup).json()] == [
        "w2"
    ]
    metrics = client.get("/metrics").text
    assert "guanjia_ingest_messages" in metrics
    assert client.get("/healthz").json()["database"] is True


def test_reopen_through_api_restarts_the_sla_clock(client: TestClient, db_url: str) -> None:
    """A ticket two hours old with every breach recorded, resolved and reopened by people: the
    reopened ticket answers with fresh deadlines from the reopen and escalates again in its
    new cycle (before, the first cycle's deadlines and breaches stayed)."""
    policies = dict(DEFAULT_POLICIES)
    store = Store(db_url)
    opened_at = time.time() - 2 * 3600
    message = event(SITE, "cam-a", "ev-old-0001", zone_id="zone-b", ts=opened_at)
    IngestHandler(store, policies).handle(topic_of(message), c.encode(message), opened_at)
    store.escalations.run_escalations(
        time.time(), policies
    )  # whatever the app's first SLA pass left
    op, sup = token(client, "op"), token(client, "sup")
    items = client.get("/api/tickets", headers=op, params={"sort": "created_at"}).json()["items"]
    tid = items[0]["id"]
    assert [
        e["breach"] for e in client.get(f"/api/tickets/{tid}", headers=op).json()["escalations"]
    ] == ["ack", "resolve", "resolve_2"]
    client.post(f"/api/tickets/{tid}/acknowledge", headers=op)
    files = {"file": ("site.jpg", JPEG, "image/jpeg")}
    assert client.post(f"/api/tickets/{tid}/photos", headers=sup, files=files).status_code == 201
    r = client.post(f"/api/tickets/{tid}/resolve", headers=sup, json={"note": "towed"})
    assert r.json()["state"] == "resolved"
    r = client.post(f"/api/tickets/{tid}/reopen", headers=op, json={"note": "car is back"})
    assert r.status_code == 200, r.text
    ticket = r.json()
    reopened_at = ticket["updated_at"]
    assert ticket["state"] == "new"
    assert (ticket["ack_due_at"], ticket["resolve_due_at"]) == (
        reopened_at + 20 * 60,
        reopened_at + 30 * 60,
    )
    assert ticket["acknowledged_at"] is None
    assert (ticket["tier"], ticket["sla_cycle"]) == (3, 1)
    try:
        assert store.escalations.run_escalations(reopened_at + 1, policies) == []
        done = store.escalations.run_escalations(
            reopened_at + 20 * 60, policies
        )  # the fixture's too
        mine = [(e.cycle, e.breach.value, int(e.to_tier)) for e, _ in done if e.ticket_id == tid]
        assert mine == [(1, "ack", 3)]
    finally:
        store.close()
    detail = client.get(f"/api/tickets/{tid}", headers=op).json()
    assert [(e["cycle"], e["breach"]) for e in detail["escalations"]] == [
        (0, "ack"),
        (0, "resolve"),
        (0, "resolve_2"),
        (1, "ack"),
    ]
