"""API tokens travel only in the Authorization header; the SSE stream alone takes a query
credential, and only a short-lived stream ticket; neither reaches the access log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.gateway.apphelpers import PASSWORD, running_app, seed_users, settings_for, token
from tests.gateway.httpproc import JWT_SECRET, start_http_gateway


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    seed_users(sqlite_url)
    with running_app(settings_for(sqlite_url)) as test_client:
        yield test_client


def _stream_ticket(client: TestClient, headers: dict[str, str]) -> str:
    answer = client.post("/api/stream-ticket", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert 0 < body["expires_at"] - time.time() <= 60
    return str(body["ticket"])


def test_api_token_in_the_query_is_refused_everywhere(client: TestClient) -> None:
    bearer = token(client, "op")["Authorization"].removeprefix("Bearer ")
    assert client.get("/api/tickets", headers={"Authorization": f"Bearer {bearer}"}).is_success
    assert client.get("/api/tickets", params={"access_token": bearer}).status_code == 401
    assert client.get("/api/me", params={"access_token": bearer}).status_code == 401
    answer = client.get("/api/stream", params={"access_token": bearer, "max_events": 1})
    assert answer.status_code == 401
    answer = client.get("/api/stream", params={"stream_ticket": bearer, "max_events": 1})
    assert answer.status_code == 401


def test_stream_ticket_opens_the_stream_and_nothing_else(client: TestClient) -> None:
    op = token(client, "op")
    ticket = _stream_ticket(client, op)
    answer = client.get("/api/stream", params={"stream_ticket": ticket, "max_events": 1})
    assert answer.status_code == 200
    assert answer.text.startswith("event: hello\n")
    assert '"user": "op"' in answer.text
    assert client.get("/api/tickets", params={"stream_ticket": ticket}).status_code == 401
    as_bearer = {"Authorization": f"Bearer {ticket}"}
    assert client.get("/api/tickets", headers=as_bearer).status_code == 401
    assert client.post("/api/stream-ticket", headers=as_bearer).status_code == 401
    assert client.post("/api/stream-ticket").status_code == 401


def test_expired_or_forged_stream_ticket_is_refused(client: TestClient) -> None:
    from gateway.auth import issue_stream_ticket  # new with stream tickets

    key = settings_for("sqlite://").signing_key()
    expired = issue_stream_ticket("op", key, time.time() - 120, 60)
    fresh = issue_stream_ticket("op", key, time.time(), 60)
    forged = issue_stream_ticket("op", "another-key-" + "z" * 32, time.time(), 60)
    for ticket, expected in ((expired, 401), (forged, 401), (fresh, 200)):
        answer = client.get("/api/stream", params={"stream_ticket": ticket, "max_events": 1})
        assert answer.status_code == expected, ticket


def test_access_log_of_gateway_run_holds_no_token_or_ticket(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'gateway.db'}"
    seed_users(db_url)
    gateway = start_http_gateway(tmp_path, db_url, log_level="info")
    try:
        login = httpx.post(
            f"{gateway.url}/api/login", json={"username": "op", "password": PASSWORD}
        )
        api_token = login.json()["access_token"]
        bearer = {"Authorization": f"Bearer {api_token}"}
        refused = httpx.get(f"{gateway.url}/api/tickets", params={"access_token": api_token})
        assert refused.status_code == 401
        ticket = httpx.post(f"{gateway.url}/api/stream-ticket", headers=bearer).json()["ticket"]
        stream = httpx.get(
            f"{gateway.url}/api/stream",
            params={"stream_ticket": ticket, "max_events": 1},
            timeout=20,
        )
        assert stream.status_code == 200
    finally:
        gateway.stop()
    log = gateway.log.read_text()
    assert "GET /api/stream?" in log, "the access log was not written at all"
    assert "/api/tickets?" in log
    assert api_token not in log
    assert ticket not in log
    assert JWT_SECRET not in log
    assert "eyJ" not in log  # no JWT, whole or in part (every JWT header starts so)
