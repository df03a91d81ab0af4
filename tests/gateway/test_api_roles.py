"""Role matrix: every route the app serves × every role answers exactly what the permission
table says, and the docs print that table.

- Every route names one `Permission` (or is listed below as public / any signed-in user);
  a route added without one fails `test_every_route_has_a_permission_and_is_documented`.
- The running app is asked every route as nobody, and as each role, with a request that
  succeeds for an allowed role: the answer must be exactly 401 (no token), 403 (role not in
  the table) or the route's own success status. A 500, a 404 or a 409 for an allowed role is
  a failure, and a route without a request recipe here fails too.
- docs/gateway.md (and any doc printing the table) lists each route's permission and each
  permission's roles exactly as the code does.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

import contract as c
from gateway.api.permissions import PERMISSIONS, Permission
from gateway.auth import Role, issue_console_session
from gateway.config import MqttSettings
from gateway.console.session import CSRF_COOKIE, SESSION_COOKIE, csrf_token
from gateway.ingest import IngestHandler
from gateway.main import ROUTE_MODULES, create_app
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store
from tests.gateway.apphelpers import OTHER_SITE, PASSWORD, SITE, seed_users, settings_for, token
from tests.gateway.factories import event, seed_site, topic_of
from tests.gateway.imagedata import encoded
from tests.gateway.proc import wait_for
from tests.support.broker import MosquittoBroker

REPO = Path(__file__).resolve().parents[2]
PUBLIC = {
    ("POST", "/api/login"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/console/login"),
    ("POST", "/console/login"),
    ("POST", "/console/logout"),
    ("GET", "/console/lang"),
}
SIGNED_IN = {("GET", "/api/me"), ("GET", "/console")}  # any valid session; no permission
USER_OF = {Role.ADMIN: "admin", Role.SUPERVISOR: "sup", Role.OPERATOR: "op", Role.WORKER: "worker"}
JPEG = encoded(".jpg")
GRID = f"g-{SITE}"
KEY = settings_for("sqlite://").signing_key()
CSRF_COOKIE_VALUE = "csrf-cookie-of-the-role-matrix"
CSRF = csrf_token(KEY, CSRF_COOKIE_VALUE)
"""The console's form field for the CSRF cookie every console request below carries."""


def console_headers(username: str | None) -> dict[str, str]:
    """The cookies a browser signed in as `username` (None: nobody) sends to the console:
    the console authenticates by session cookie, never by an Authorization header."""
    cookie = f"{CSRF_COOKIE}={CSRF_COOKIE_VALUE}"
    if username is not None:
        session = issue_console_session(username, KEY, time.time(), 3600)
        cookie += f"; {SESSION_COOKIE}={session}"
    return {"Cookie": cookie}


def _routes() -> list[tuple[str, APIRoute]]:
    """Every (method, route) of the route modules the app includes (the test below checks
    that these are exactly what the app serves)."""
    return [
        (method, route)
        for module in ROUTE_MODULES
        for route in module.router.routes
        if isinstance(route, APIRoute)
        for method in sorted(route.methods or ())
    ]


def _permission_of(route: APIRoute) -> Permission | None:
    found: set[Permission] = set()
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        permission = getattr(dep.call, "permission", None)
        if permission is not None:
            found.add(Permission(permission))
        stack.extend(dep.dependencies)
    assert len(found) <= 1, f"{route.path} checks several permissions: {found}"
    return found.pop() if found else None


def _documented(text: str) -> tuple[dict[tuple[str, str], str], dict[str, frozenset[Role]]]:
    """The route → permission table and the permission → roles table of one doc."""
    routes: dict[tuple[str, str], str] = {}
    roles: dict[str, frozenset[Role]] = {}
    order = [Role.ADMIN, Role.SUPERVISOR, Role.OPERATOR, Role.WORKER]
    for line in text.splitlines():
        route = re.fullmatch(r"\| `(GET|POST|PUT|DELETE|PATCH) ([^`]+)` \| ([^|]+) \|", line)
        if route:
            routes[(route[1], route[2])] = route[3].strip().strip("`")
        perm = re.fullmatch(r"\| `([a-z_]+)` \|((?: [✓–] \|){4})", line)
        if perm:
            marks = perm[2].replace("|", "").split()
            roles[perm[1]] = frozenset(r for r, m in zip(order, marks, strict=True) if m == "✓")
    return routes, roles


def test_every_route_has_a_permission_and_is_documented() -> None:
    app = create_app(settings_for("sqlite://"))
    served = {(method, route.path) for method, route in _routes()}
    openapi = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}
    assert served == openapi
    expected: dict[tuple[str, str], str] = {}
    for method, route in _routes():
        permission = _permission_of(route)
        key = (method, route.path)
        if key in PUBLIC or key in SIGNED_IN:
            assert permission is None, f"{key} is listed as open but checks {permission}"
            expected[key] = "public" if key in PUBLIC else "signed in"
            continue
        assert permission is not None, f"{method} {route.path} has no permission check"
        expected[key] = permission.value
    used = {v for v in expected.values() if v not in {"public", "signed in"}}
    assert used == {p.value for p in Permission}, "a permission no route uses"
    docs = [
        path
        for path in sorted((REPO / "docs").glob("*.md"))
        if "| permission | admin | supervisor | operator | worker |" in path.read_text()
    ]
    assert REPO / "docs" / "gateway.md" in docs
    for path in docs:
        routes, roles = _documented(path.read_text())
        assert routes == expected, f"{path.name}: route table differs from the app"
        assert roles == {p.value: r for p, r in PERMISSIONS.items()}, f"{path.name}: roles"


# -- the running app -----------------------------------------------------------------------


@dataclass
class World:
    """The app with one ticket of every kind a route needs, and how to make fresh ones."""

    client: TestClient
    store: Store
    handler: IngestHandler
    admin: dict[str, str]
    read_ticket: int
    attachment_url: str
    counter: int = 0

    def new_ticket(self) -> int:
        """A fresh `new` ticket (its own zone, so it never merges into another)."""
        self.counter += 1
        now = time.time()
        message = event(SITE, "cam-a", f"ev-roles-{self.counter:05d}", zone_id=f"z{self.counter}")
        message = message.model_copy(update={"ts": now})
        result = self.handler.handle(topic_of(message), c.encode(message), now)
        assert result.outcome.value == "accepted"
        page = self.client.get(
            "/api/tickets", headers=self.admin, params={"sort": "-id", "limit": 1}
        ).json()
        ticket_id: int = page["items"][0]["id"]
        return ticket_id

    def admin_does(self, ticket_id: int, *steps: str) -> None:
        for step in steps:
            if step == "photo":
                files = {"file": ("p.jpg", JPEG, "image/jpeg")}
                r = self.client.post(
                    f"/api/tickets/{ticket_id}/photos", headers=self.admin, files=files
                )
            else:
                body = {"dispatch": {"assignee": "worker"}, "resolve": {"note": "done"}}
                r = self.client.post(
                    f"/api/tickets/{ticket_id}/{step}", headers=self.admin, json=body.get(step)
                )
            assert r.status_code in (200, 201), (step, r.text)


# What a ticket must have been through before an allowed role's request succeeds.
BEFORE = {
    "acknowledge": (),
    "dispatch": (),
    "start": ("dispatch",),
    "photos": ("dispatch",),
    "resolve": ("dispatch", "photo"),
    "close": ("dispatch", "photo", "resolve"),
    "reopen": ("dispatch", "photo", "resolve"),
}
TRANSITION_BODY: dict[str, dict[str, Any]] = {
    "dispatch": {"json": {"assignee": "worker"}},
    "resolve": {"json": {"note": "done"}},
    "reopen": {"json": {"note": "again"}},
    "photos": {"files": {"file": ("p.jpg", JPEG, "image/jpeg")}},
}
COMMAND = {"name": "ping", "args": {}, "expires_in_s": 30}

Recipe = Callable[[World, Role], tuple[str, dict[str, Any]]]


def _console_form(kwargs: dict[str, Any]) -> dict[str, Any]:
    """An API request's body as the console's form: fields plus the CSRF field."""
    data = {"csrf": CSRF, **kwargs.get("json", {})}
    out: dict[str, Any] = {"data": data}
    if "files" in kwargs:
        out["files"] = kwargs["files"]
    return out


def _console_action(action: str) -> Recipe:
    def recipe(world: World, _role: Role) -> tuple[str, dict[str, Any]]:
        ticket_id = world.new_ticket()
        world.admin_does(ticket_id, *BEFORE[action])
        return f"/console/tickets/{ticket_id}/{action}", _console_form(
            TRANSITION_BODY.get(action, {})
        )

    return recipe


def _my_ticket(world: World, _role: Role) -> tuple[str, dict[str, Any]]:
    ticket_id = world.new_ticket()
    world.admin_does(ticket_id, "dispatch")  # to "worker": the one worker may open it
    return f"/console/my/{ticket_id}", {}


def _ticket_action(action: str) -> Recipe:
    def recipe(world: World, _role: Role) -> tuple[str, dict[str, Any]]:
        ticket_id = world.new_ticket()
        world.admin_does(ticket_id, *BEFORE[action])
        return f"/api/tickets/{ticket_id}/{action}", TRANSITION_BODY.get(action, {})

    return recipe


def _fixed(url: str, **kwargs: Any) -> Recipe:
    return lambda _world, _role: (url, kwargs)


def _new_user(_world: World, role: Role) -> tuple[str, dict[str, Any]]:
    name = f"u-{role.value}-{uuid.uuid4().hex[:6]}"
    body = {"username": name, "password": "long enough pw", "role": "worker", "sites": [SITE]}
    return "/api/users", {"json": body}


RECIPES: dict[tuple[str, str], Recipe] = {
    ("POST", "/api/login"): _fixed("/api/login", json={"username": "op", "password": PASSWORD}),
    ("GET", "/healthz"): _fixed("/healthz"),
    ("GET", "/metrics"): _fixed("/metrics"),
    ("GET", "/api/me"): _fixed("/api/me"),
    ("GET", "/api/stream"): _fixed("/api/stream", params={"max_events": 1}),
    ("POST", "/api/stream-ticket"): _fixed("/api/stream-ticket"),
    ("GET", "/api/tickets"): _fixed("/api/tickets"),
    ("GET", "/api/tickets/{ticket_id}"): lambda w, _r: (f"/api/tickets/{w.read_ticket}", {}),
    ("GET", "/api/tickets/{ticket_id}/attachments/{attachment_id}"): lambda w, _r: (
        w.attachment_url,
        {},
    ),
    ("GET", "/api/tickets/{ticket_id}/snapshots/{snapshot_id}"): lambda w, _r: (
        f"/api/tickets/{w.read_ticket}/snapshots/snap-1",
        {},
    ),
    **{
        ("POST", f"/api/tickets/{{ticket_id}}/{action}"): _ticket_action(action)
        for action in BEFORE
    },
    ("GET", "/api/devices"): _fixed("/api/devices"),
    ("GET", "/api/devices/{device_id}"): _fixed("/api/devices/cam-a"),
    ("GET", "/api/devices/{device_id}/metrics/{series}"): _fixed(
        "/api/devices/cam-a/metrics/power"
    ),
    ("GET", "/api/devices/{device_id}/latest"): _fixed("/api/devices/cam-a/latest"),
    ("POST", "/api/devices"): _fixed(
        "/api/devices", json={"device_id": "cam-n", "site_id": SITE, "kind": "camera"}
    ),
    ("PUT", "/api/devices/{device_id}/site"): _fixed(
        "/api/devices/cam-move/site", json={"site_id": OTHER_SITE}
    ),
    ("POST", "/api/devices/{device_id}/commands"): _fixed(
        "/api/devices/cam-a/commands", json=COMMAND
    ),
    ("GET", "/api/devices/{device_id}/commands"): _fixed("/api/devices/cam-a/commands"),
    ("GET", "/api/grids"): _fixed("/api/grids"),
    ("PUT", "/api/grids/{grid_id}"): _fixed(
        f"/api/grids/{GRID}",
        json={"grid_id": GRID, "site_id": SITE, "name": "G", "supervisor": "sup"},
    ),
    ("GET", "/api/grids/{grid_id}/shifts"): _fixed(f"/api/grids/{GRID}/shifts"),
    ("POST", "/api/grids/{grid_id}/shifts"): _fixed(
        f"/api/grids/{GRID}/shifts", json={"username": "worker", "starts_at": 0, "ends_at": 1}
    ),
    ("GET", "/api/users"): _fixed("/api/users"),
    ("POST", "/api/users"): _new_user,
    ("GET", "/api/dead-letters"): _fixed("/api/dead-letters"),
    ("POST", "/api/webhooks"): _fixed(
        "/api/webhooks", json={"url": "http://127.0.0.1:9/x", "flavour": "wecom"}
    ),
    # The console: pages and form posts by session cookie (see console_headers).
    ("GET", "/console/login"): _fixed("/console/login"),
    ("POST", "/console/login"): _fixed(
        "/console/login", data={"username": "op", "password": PASSWORD, "csrf": CSRF}
    ),
    ("POST", "/console/logout"): _fixed("/console/logout", data={"csrf": CSRF}),
    ("GET", "/console/lang"): _fixed("/console/lang", params={"lang": "en"}),
    ("GET", "/console"): _fixed("/console"),
    ("GET", "/console/wall"): _fixed("/console/wall"),
    ("GET", "/console/wall/cards"): _fixed("/console/wall/cards"),
    ("GET", "/console/wall/cards/{ticket_id}"): lambda w, _r: (
        f"/console/wall/cards/{w.read_ticket}",
        {},
    ),
    ("GET", "/console/stream"): _fixed("/console/stream", params={"max_events": 1}),
    ("GET", "/console/queue"): _fixed("/console/queue"),
    ("GET", "/console/tickets/{ticket_id}"): lambda w, _r: (
        f"/console/tickets/{w.read_ticket}",
        {},
    ),
    **{
        ("POST", f"/console/tickets/{{ticket_id}}/{action}"): _console_action(action)
        for action in BEFORE
    },
    ("GET", "/console/tickets/{ticket_id}/snapshots/{snapshot_id}"): lambda w, _r: (
        f"/console/tickets/{w.read_ticket}/snapshots/snap-1",
        {},
    ),
    ("GET", "/console/tickets/{ticket_id}/attachments/{attachment_id}"): lambda w, _r: (
        w.attachment_url.replace("/api/", "/console/"),
        {},
    ),
    ("GET", "/console/my"): _fixed("/console/my"),
    ("GET", "/console/my/{ticket_id}"): _my_ticket,
    ("GET", "/console/devices"): _fixed("/console/devices"),
    ("GET", "/console/dead-letters"): _fixed("/console/dead-letters"),
    ("GET", "/console/sla"): _fixed("/console/sla"),
}


@pytest.fixture
def world(sqlite_url: str, mqtt_broker: MosquittoBroker) -> Iterator[World]:
    seed_users(sqlite_url)
    store = Store(sqlite_url)
    seed_site(store, SITE, ("cam-a", "cam-move"))
    handler = IngestHandler(store, dict(DEFAULT_POLICIES))
    now = time.time()
    snapshot = c.SnapshotRef(
        snapshot_id="snap-1",
        sha256=hashlib.sha256(JPEG).hexdigest(),
        size_bytes=len(JPEG),
        width=1,
        height=1,
    )
    first = event(SITE, "cam-a", "ev-roles-read", ts=now, snapshot=snapshot)
    handler.handle(topic_of(first), c.encode(first), now)
    handler.handle(str(c.snapshot_topic(SITE, "cam-a", "snap-1")), JPEG, now)
    mqtt = MqttSettings(
        host=mqtt_broker.host, port=mqtt_broker.port, client_id="gw-roles-" + uuid.uuid4().hex
    )
    settings = settings_for(sqlite_url, ingest_enabled=True, mqtt=mqtt)
    # A 500 must come back as a status to compare, not as an exception out of the client.
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        ingest = client.app.state.ingest  # type: ignore[attr-defined]
        wait_for(ingest.connected.is_set, 15, "the gateway's MQTT connection")
        admin = token(client, "admin")
        read_ticket = client.get("/api/tickets", headers=admin).json()["items"][0]["id"]
        files = {"file": ("p.jpg", JPEG, "image/jpeg")}
        r = client.post(f"/api/tickets/{read_ticket}/photos", headers=admin, files=files)
        assert r.status_code == 201, r.text
        yield World(client, store, handler, admin, read_ticket, r.json()["url"])
    store.close()


def test_every_route_answers_each_role_exactly_as_the_table_says(world: World) -> None:
    client = world.client
    headers = {role: token(client, user) for role, user in USER_OF.items()}
    missing = [(m, r.path) for m, r in _routes() if (m, r.path) not in RECIPES]
    assert missing == [], "routes without a request recipe in this test"
    wrong: list[str] = []
    for method, route in _routes():
        key = (method, route.path)
        success = route.status_code or 200
        permission = _permission_of(route)
        console = route.path.startswith("/console")
        url, kwargs = RECIPES[key](world, Role.ADMIN)
        client.cookies.clear()  # only the headers below speak for the caller
        nobody = console_headers(None) if console else {}
        anonymous = client.request(
            method, url, headers=nobody, follow_redirects=False, **kwargs
        ).status_code
        # The console sends a browser without a session to its login page (303).
        refused = 303 if console else 401
        if anonymous != (success if key in PUBLIC else refused):
            wrong.append(f"{method} {route.path} without a token: {anonymous}")
        if key in PUBLIC:
            continue
        for role in Role:
            allowed = permission is None or role in PERMISSIONS[permission]
            url, kwargs = RECIPES[key](world, role)
            client.cookies.clear()
            auth = console_headers(USER_OF[role]) if console else headers[role]
            r = client.request(method, url, headers=auth, follow_redirects=False, **kwargs)
            expected = success if allowed else 403
            if r.status_code != expected:
                wrong.append(
                    f"{method} {route.path} as {role.value}: {r.status_code} "
                    f"(expected {expected}) {r.text[:100]}"
                )
    assert wrong == []
