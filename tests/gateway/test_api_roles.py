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
- Everything `app.routes` holds is in that table: a route added on the app itself, or in a
  router included outside ROUTE_MODULES (even hidden from the OpenAPI schema, which the
  first test compares against), fails `test_the_app_serves_only_routes_in_the_role_table`.
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
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

import contract as c
from gateway.api.permissions import PERMISSIONS, Permission
from gateway.auth import Role, issue_console_session
from gateway.console.session import CSRF_COOKIE, SESSION_COOKIE, csrf_token
from gateway.ingest import IngestHandler
from gateway.main import ROUTE_MODULES, create_app
from gateway.mqtt_settings import MqttSettings
from gateway.residents import pow
from gateway.residents.settings import ResidentSettings
from gateway.rollouts.links import signed_url
from gateway.rollouts.settings import ModelRegistrySettings
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store
from guanjia.artifacts import generate_key
from tests.gateway.apphelpers import OTHER_SITE, PASSWORD, SITE, seed_users, settings_for, token
from tests.gateway.factories import event, seed_site, topic_of
from tests.gateway.imagedata import encoded
from tests.gateway.proc import wait_for
from tests.gateway.residents.sitefiles import write_sites
from tests.support.broker import MosquittoBroker
from tests.support.tiny_artifact import tiny_artifact

REPO = Path(__file__).resolve().parents[2]
PUBLIC = {
    ("POST", "/api/login"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    # Residents: no account; limits per address and per place, proof of work (docs/residents.md).
    ("GET", "/api/public/places/{token}"),
    ("GET", "/api/public/places/{token}/challenge"),
    ("POST", "/api/public/places/{token}/reports"),
    ("GET", "/api/public/track/{token}"),
    ("POST", "/api/public/track/{token}/rating"),
    ("GET", "/console/login"),
    ("POST", "/console/login"),
    ("POST", "/console/logout"),
    ("GET", "/console/lang"),
    # The residents' own pages (console): the same limits as the public API.
    ("GET", "/r/{token}"),
    ("GET", "/r/track/{token}"),
    ("POST", "/r/track/{token}/rating"),
}
SIGNED_IN = {("GET", "/api/me"), ("GET", "/console")}  # any valid token or console session
# No token: the short-lived link a rollout sends a device is the credential (a bad one: 403).
SIGNED_URL = {("GET", "/api/models/{sha256}/download")}
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
        if key in PUBLIC or key in SIGNED_IN or key in SIGNED_URL:
            assert permission is None, f"{key} is listed as open but checks {permission}"
            expected[key] = (
                "public" if key in PUBLIC else "signed URL" if key in SIGNED_URL else "signed in"
            )
            continue
        assert permission is not None, f"{method} {route.path} has no permission check"
        expected[key] = permission.value
    used = {v for v in expected.values() if v not in {"public", "signed in", "signed URL"}}
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
    artifact: bytes = b""
    artifact_sha: str = ""
    rollout_id: str = ""
    counter: int = 0

    def new_rollout(self, *then: str) -> str:
        """A fresh rollout of the artifact to cam-a, moved through `then` by the admin."""
        body = {"artifact_sha256": self.artifact_sha, "site_id": SITE, "device_ids": ["cam-a"]}
        r = self.client.post("/api/rollouts", headers=self.admin, json=body)
        assert r.status_code == 201, r.text
        rollout_id: str = r.json()["rollout_id"]
        for step in then:
            moved = self.client.post(f"/api/rollouts/{rollout_id}/{step}", headers=self.admin)
            assert moved.status_code == 200, moved.text
        return rollout_id

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

    @property
    def residents(self) -> Any:
        return self.client.app.state.runtime.residents  # type: ignore[attr-defined]

    def qr(self) -> str:
        token: str = self.residents.place_token(SITE, "b3-lobby")
        return token

    def solved_report(self) -> dict[str, str]:
        issued = self.residents._challenge(SITE, time.time())
        return {
            "category": "litter",
            "description": "垃圾",
            "challenge": issued.challenge,
            "nonce": pow.solve(issued.challenge, issued.bits),
        }

    def report_ticket(self) -> int:
        """The ticket of a report a resident sent from a QR code."""
        r = self.client.post(f"/api/public/places/{self.qr()}/reports", data=self.solved_report())
        assert r.status_code == 201, r.text
        page = self.client.get(
            "/api/tickets",
            headers=self.admin,
            params={"device_id": "place:b3-lobby", "sort": "-id"},
        )
        ticket_id: int = page.json()["items"][0]["id"]
        return ticket_id

    def resolved_report(self) -> str:
        """The tracking token of a report an admin resolved (ready for a rating)."""
        body = {
            "place_id": "b3-lobby",
            "channel": "hotline",
            "category": "noise",
            "description": "x",
        }
        r = self.client.post(f"/api/sites/{SITE}/reports", headers=self.admin, json=body)
        assert r.status_code == 201, r.text
        created = r.json()
        self.admin_does(created["ticket_id"], "photo", "resolve")
        token: str = created["tracking_token"]
        return token

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
    ("POST", "/api/devices/{device_id}/ports/{port}/enable"): _fixed(
        "/api/devices/shed-r/ports/1/enable", json={"reason": "socket inspected and replaced"}
    ),
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
    ("POST", "/api/models"): lambda w, _r: (
        "/api/models",
        {"content": w.artifact, "headers_extra": {"Content-Type": "application/octet-stream"}},
    ),
    ("GET", "/api/models"): _fixed("/api/models"),
    ("GET", "/api/models/{sha256}/download"): lambda w, _r: (
        signed_url(
            "http://testserver",
            "test-secret-" + "x" * 32,
            w.artifact_sha,
            site_id=SITE,
            device_id="cam-a",
            expires=int(time.time()) + 600,
        ).removeprefix("http://testserver"),
        {},
    ),
    ("POST", "/api/rollouts"): lambda w, _r: (
        "/api/rollouts",
        {"json": {"artifact_sha256": w.artifact_sha, "site_id": SITE, "device_ids": ["cam-a"]}},
    ),
    ("GET", "/api/rollouts"): _fixed("/api/rollouts"),
    ("GET", "/api/rollouts/{rollout_id}"): lambda w, _r: (f"/api/rollouts/{w.rollout_id}", {}),
    ("POST", "/api/rollouts/{rollout_id}/pause"): lambda w, _r: (
        f"/api/rollouts/{w.new_rollout()}/pause",
        {},
    ),
    ("POST", "/api/rollouts/{rollout_id}/resume"): lambda w, _r: (
        f"/api/rollouts/{w.new_rollout('pause')}/resume",
        {},
    ),
    ("POST", "/api/rollouts/{rollout_id}/cancel"): lambda w, _r: (
        f"/api/rollouts/{w.new_rollout()}/cancel",
        {},
    ),
    ("GET", "/api/public/places/{token}"): lambda w, _r: (f"/api/public/places/{w.qr()}", {}),
    ("GET", "/api/public/places/{token}/challenge"): lambda w, _r: (
        f"/api/public/places/{w.qr()}/challenge",
        {},
    ),
    ("POST", "/api/public/places/{token}/reports"): lambda w, _r: (
        f"/api/public/places/{w.qr()}/reports",
        {"data": w.solved_report()},
    ),
    ("GET", "/api/public/track/{token}"): lambda w, _r: (
        f"/api/public/track/{w.resolved_report()}",
        {},
    ),
    ("POST", "/api/public/track/{token}/rating"): lambda w, _r: (
        f"/api/public/track/{w.resolved_report()}/rating",
        {"json": {"rating": 5}},
    ),
    ("POST", "/api/sites/{site_id}/reports"): _fixed(
        f"/api/sites/{SITE}/reports",
        json={
            "place_id": "b3-lobby",
            "channel": "wechat",
            "category": "litter",
            "description": "x",
        },
    ),
    ("GET", "/api/tickets/{ticket_id}/report"): lambda w, _r: (
        f"/api/tickets/{w.report_ticket()}/report",
        {},
    ),
    ("GET", "/api/sites/{site_id}/rounds/today"): _fixed(f"/api/sites/{SITE}/rounds/today"),
    ("GET", "/api/sites/{site_id}/rounds/checkpoints/{tag_id}"): _fixed(
        f"/api/sites/{SITE}/rounds/checkpoints/tag-ext1"
    ),
    ("POST", "/api/sites/{site_id}/rounds/scans"): _fixed(
        f"/api/sites/{SITE}/rounds/scans",
        data={"tag_id": "tag-ext1", "results": '{"pressure": true, "seal": true}'},
    ),
    ("GET", "/api/figures"): _fixed("/api/figures", params={"start": 0, "end": 86400 * 365}),
    ("GET", "/api/figures/monthly/{site_id}"): _fixed(
        f"/api/figures/monthly/{SITE}", params={"month": "2026-03"}
    ),
    ("GET", "/api/figures/export"): _fixed(
        "/api/figures/export", params={"start": 0, "end": 86400 * 365, "format": "xlsx"}
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
    ("GET", "/console/rounds"): _fixed("/console/rounds"),
    ("GET", "/console/rounds/{site_id}/checkpoints/{tag_id}"): _fixed(
        f"/console/rounds/{SITE}/checkpoints/tag-ext1"
    ),
    ("POST", "/console/rounds/{site_id}/scans"): _fixed(
        f"/console/rounds/{SITE}/scans",
        data={"csrf": CSRF, "tag_id": "tag-ext1", "item.pressure": "pass", "item.seal": "pass"},
    ),
    ("GET", "/console/figures"): _fixed("/console/figures"),
    ("GET", "/console/figures/export"): _fixed(
        "/console/figures/export", params={"start": 0, "end": 86400 * 365, "format": "csv"}
    ),
    ("GET", "/console/reports/new"): _fixed("/console/reports/new"),
    ("POST", "/console/reports"): _fixed(
        "/console/reports",
        data={
            "csrf": CSRF,
            "site_id": SITE,
            "place_id": "b3-lobby",
            "channel": "wechat",
            "category": "litter",
            "description": "x",
        },
    ),
    ("GET", "/r/{token}"): lambda w, _r: (f"/r/{w.qr()}", {}),
    ("GET", "/r/track/{token}"): lambda w, _r: (f"/r/track/{w.resolved_report()}", {}),
    ("POST", "/r/track/{token}/rating"): lambda w, _r: (
        f"/r/track/{w.resolved_report()}/rating",
        {
            "data": {"rating": "5", "csrf": CSRF},
            "headers_extra": {"Cookie": f"{CSRF_COOKIE}={CSRF_COOKIE_VALUE}"},
        },
    ),
}


@pytest.fixture
def world(sqlite_url: str, mqtt_broker: MosquittoBroker, tmp_path: Path) -> Iterator[World]:
    seed_users(sqlite_url)
    store = Store(sqlite_url)
    seed_site(store, SITE, ("cam-a", "cam-move", "shed-r"))
    store.sensors.set_sensor_node("shed-r", "charging_monitor", esphome=True)
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
    key = generate_key()
    artifact_path = tmp_path / "tiny.gjm"
    artifact_sha = tiny_artifact(artifact_path, key)
    models = ModelRegistrySettings(
        store_dir=tmp_path / "models",
        trusted_keys=[key.public.text()],
        public_url="http://127.0.0.1:9",
    )
    settings = settings_for(
        sqlite_url,
        ingest_enabled=True,
        mqtt=mqtt,
        models=models,
        sites_dir=write_sites(tmp_path / "sites"),
        residents=ResidentSettings(pow_bits=8),
    )
    # A 500 must come back as a status to compare, not as an exception out of the client.
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        ingest = client.app.state.ingest  # type: ignore[attr-defined]
        wait_for(ingest.connected.is_set, 15, "the gateway's MQTT connection")
        admin = token(client, "admin")
        tickets = client.get("/api/tickets", headers=admin, params={"device_id": "cam-a"})
        read_ticket = tickets.json()["items"][0]["id"]
        files = {"file": ("p.jpg", JPEG, "image/jpeg")}
        r = client.post(f"/api/tickets/{read_ticket}/photos", headers=admin, files=files)
        assert r.status_code == 201, r.text
        world = World(client, store, handler, admin, read_ticket, r.json()["url"])
        world.artifact = artifact_path.read_bytes()
        world.artifact_sha = artifact_sha
        up = client.post(
            "/api/models",
            headers={**admin, "Content-Type": "application/octet-stream"},
            content=world.artifact,
        )
        assert up.status_code == 201, up.text
        world.rollout_id = world.new_rollout()
        yield world
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
        extra = kwargs.pop("headers_extra", {})
        client.cookies.clear()  # only the headers below speak for the caller
        nobody = {**(console_headers(None) if console else {}), **extra}
        anonymous = client.request(
            method, url, headers=nobody, follow_redirects=False, **kwargs
        ).status_code
        open_route = key in PUBLIC or key in SIGNED_URL
        # The console sends a browser without a session to its login page (303).
        refused = 303 if console else 401
        if anonymous != (success if open_route else refused):
            wrong.append(f"{method} {route.path} without a token: {anonymous}")
        if open_route:
            continue
        for role in Role:
            allowed = permission is None or role in PERMISSIONS[permission]
            url, kwargs = RECIPES[key](world, role)
            extra = kwargs.pop("headers_extra", {})
            client.cookies.clear()
            auth = console_headers(USER_OF[role]) if console else headers[role]
            r = client.request(
                method, url, headers={**auth, **extra}, follow_redirects=False, **kwargs
            )
            expected = success if allowed else 403
            if r.status_code != expected:
                wrong.append(
                    f"{method} {route.path} as {role.value}: {r.status_code} "
                    f"(expected {expected}) {r.text[:100]}"
                )
    assert wrong == []


# -- every route the app serves is in the table above ----------------------------------------

FRAMEWORK = {
    # FastAPI's own pages, public by design (docs/gateway.md: "OpenAPI is served at /docs").
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
}
MOUNTS = {"/console/static"}  # the console's CSS and scripts: public files


def _unlisted(app: FastAPI) -> list[str]:
    """What `app` serves that the role table (`_routes`, from ROUTE_MODULES) does not know:
    a route added on the app itself, a router included outside ROUTE_MODULES (even one
    hidden from the OpenAPI schema), a mount or a plain route. Only public types are looked
    at: an included router is whatever is not a route or a mount, and there must be no more
    of those than ROUTE_MODULES has (FastAPI ≥ 0.165 keeps them unflattened; older versions
    flatten them into APIRoutes, which must then each be in the table)."""
    table = {(method, route.path) for method, route in _routes()}
    found: list[str] = []
    routers = 0
    for route in app.routes:
        if isinstance(route, APIRoute):
            found += [
                f"{m} {route.path}"
                for m in sorted(route.methods or ())
                if (m, route.path) not in table
            ]
        elif isinstance(route, Route):
            found += [
                f"{m} {route.path}"
                for m in sorted(route.methods or ())
                if m != "HEAD" and (m, route.path) not in FRAMEWORK
            ]
        elif isinstance(route, Mount):
            if route.path not in MOUNTS:
                found.append(f"mount {route.path}")
        else:
            routers += 1
    if routers > len(ROUTE_MODULES):
        found.append(f"{routers - len(ROUTE_MODULES)} router(s) included outside ROUTE_MODULES")
    return found


def test_the_app_serves_only_routes_in_the_role_table() -> None:
    assert _unlisted(create_app(settings_for("sqlite://"))) == []


def test_a_route_added_outside_the_table_is_found() -> None:
    app = create_app(settings_for("sqlite://"))

    async def sneaky() -> dict[str, str]:
        return {}

    app.add_api_route("/api/sneaky", sneaky, methods=["POST"])
    hidden = APIRouter()
    hidden.add_api_route("/api/hidden", sneaky, include_in_schema=False)
    app.include_router(hidden)

    async def plain(_request: Request) -> Response:
        return Response()

    app.add_route("/plain", plain)
    app.mount("/files", StaticFiles(directory=REPO / "docs"))
    found = _unlisted(app)
    assert {"POST /api/sneaky", "GET /plain", "mount /files"} <= set(found)
    # The hidden router: counted (FastAPI ≥ 0.165) or its route named (older, flattened).
    assert "GET /api/hidden" in found or "1 router(s) included outside ROUTE_MODULES" in found
