"""The console's HTTP rules without a browser (TestClient on the real app): cookie flags,
CSRF, the login limit shared with the API, the strict CSP, disabled users, a worker's own
tickets, and the upload limit in front of the console's photo route."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

import contract as c
from gateway.console.render import CONTENT_SECURITY_POLICY
from gateway.console.settings import ConsoleSettings
from gateway.ingest import IngestHandler
from gateway.main import create_app
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store
from tests.gateway.apphelpers import PASSWORD, SITE, seed_users, settings_for, token
from tests.gateway.factories import event, seed_site, topic_of


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    seed_users(sqlite_url)
    store = Store(sqlite_url)
    seed_site(store, SITE, ("cam-a",))
    handler = IngestHandler(store, dict(DEFAULT_POLICIES))
    now = time.time()
    for n in range(2):
        message = event(SITE, "cam-a", f"ev-pages-{n:04d}", zone_id=f"z{n}", ts=now)
        assert handler.handle(topic_of(message), c.encode(message), now).outcome.value == (
            "accepted"
        )
    store.close()
    settings = settings_for(
        sqlite_url, console=ConsoleSettings(cookie_secure=True), login_attempts=3
    )
    # https: the cookies are Secure, so a client sends them back over HTTPS only.
    with TestClient(
        create_app(settings), base_url="https://testserver", follow_redirects=False
    ) as test_client:
        yield test_client


def _csrf(client: TestClient) -> str:
    page = client.get("/console/login")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found
    return found[1]


def _login(client: TestClient, username: str) -> str:
    csrf = _csrf(client)
    answer = client.post(
        "/console/login", data={"username": username, "password": PASSWORD, "csrf": csrf}
    )
    assert answer.status_code == 303, answer.text
    return csrf


def test_session_and_csrf_cookies_are_httponly_strict_and_secure_when_configured(
    client: TestClient,
) -> None:
    first = client.get("/console/login")
    csrf_cookie = first.headers["set-cookie"]
    assert "guanjia_csrf=" in csrf_cookie
    for flag in ("HttpOnly", "SameSite=strict", "Secure"):
        assert flag.lower() in csrf_cookie.lower()
    csrf = re.search(r'name="csrf" value="([^"]+)"', first.text)
    assert csrf
    answer = client.post(
        "/console/login", data={"username": "op", "password": PASSWORD, "csrf": csrf[1]}
    )
    session = answer.headers["set-cookie"]
    assert session.startswith("guanjia_session=")
    for flag in ("HttpOnly", "SameSite=strict", "Secure"):
        assert flag.lower() in session.lower()
    assert answer.headers["location"] == "/console/wall"


def test_pages_carry_the_strict_policy(client: TestClient) -> None:
    _login(client, "op")
    page = client.get("/console/queue")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in page.text  # scripts come from files only
    assert not re.search(r"\son[a-z]+=", page.text)  # no inline event handlers
    assert 'style="' not in page.text


def test_a_form_without_the_right_csrf_field_does_nothing(client: TestClient) -> None:
    csrf = _login(client, "op")
    # One character changed: never the same token (a fixed "0" was the token 1 time in 16).
    off_by_one = csrf[:-1] + ("1" if csrf.endswith("0") else "0")
    for field in (None, "wrong", off_by_one):
        data = {} if field is None else {"csrf": field}
        answer = client.post("/console/tickets/1/acknowledge", data=data)
        assert answer.status_code == 403
    assert "新告警" in client.get("/console/tickets/1").text
    assert client.post("/console/tickets/1/acknowledge", data={"csrf": csrf}).status_code == 303
    assert "已确认" in client.get("/console/tickets/1").text
    # A refused transition answers with its status and the page, saying why.
    again = client.post("/console/tickets/1/acknowledge", data={"csrf": csrf})
    assert again.status_code == 409
    assert "工单状态已变化" in again.text


def test_console_and_api_logins_share_one_limit(client: TestClient) -> None:
    csrf = _csrf(client)
    for _ in range(3):
        wrong = client.post(
            "/console/login", data={"username": "op", "password": "nope", "csrf": csrf}
        )
        assert wrong.status_code == 401
        assert "用户名或密码错误" in wrong.text
    limited = client.post(
        "/console/login", data={"username": "op", "password": PASSWORD, "csrf": csrf}
    )
    assert limited.status_code == 429
    assert "Retry-After" in limited.headers
    api = client.post("/api/login", json={"username": "op", "password": PASSWORD})
    assert api.status_code == 429


def test_a_disabled_user_is_signed_out_at_once(client: TestClient, sqlite_url: str) -> None:
    _login(client, "op")
    assert client.get("/console/queue").status_code == 200
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE users SET disabled = 1 WHERE username = 'op'")
    answer = client.get("/console/queue")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/login")


def test_a_worker_lists_and_opens_only_their_own_tickets(client: TestClient) -> None:
    admin = token(client, "admin")
    dispatched = client.post("/api/tickets/1/dispatch", headers=admin, json={"assignee": "worker"})
    assert dispatched.status_code == 200
    _login(client, "worker")
    mine = client.get("/console/my").text
    assert "/console/my/1" in mine
    assert "/console/my/2" not in mine
    assert client.get("/console/my/2").status_code == 403


def test_a_photo_upload_without_a_session_is_not_read(client: TestClient) -> None:
    client.cookies.clear()
    big = b"\xff" * (6 * 1024 * 1024)
    answer = client.post(
        "/console/tickets/1/photos",
        files={"file": ("p.jpg", big, "image/jpeg")},
        data={"csrf": "x"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login"


def test_language_switch(client: TestClient) -> None:
    switched = client.get("/console/lang", params={"lang": "en", "next": "/console/login"})
    assert switched.status_code == 303
    assert "Sign in" in client.get("/console/login").text
    assert client.get("/console/lang", params={"lang": "fr"}).status_code == 422
