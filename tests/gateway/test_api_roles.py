"""Role matrix: every API route × every role is allowed or denied exactly as documented
(docs/gateway.md); without a token every non-public route answers 401."""

from __future__ import annotations

import time
from typing import Any

from fastapi.routing import APIRoute

import contract as c
from gateway.api.permissions import PERMISSIONS, Permission
from gateway.auth import Role
from gateway.ingest import IngestHandler
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store
from tests.gateway.apphelpers import PASSWORD, SITE, running_app, seed_users, settings_for, token
from tests.gateway.factories import event, seed_site, topic_of
from tests.gateway.imagedata import encoded

A, S, OP, W = Role.ADMIN, Role.SUPERVISOR, Role.OPERATOR, Role.WORKER
EVERYONE = frozenset(Role)
PUBLIC = None

# The documented matrix (docs/gateway.md, "Roles"). Written out, not derived from
# PERMISSIONS, so a change to the code's table must be made here and in the docs too.
MATRIX: dict[tuple[str, str], frozenset[Role] | None] = {
    ("POST", "/api/login"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/api/me"): EVERYONE,
    ("GET", "/api/stream"): EVERYONE,
    ("POST", "/api/stream-ticket"): EVERYONE,
    ("GET", "/api/tickets"): EVERYONE,
    ("GET", "/api/tickets/{ticket_id}"): EVERYONE,
    ("GET", "/api/tickets/{ticket_id}/attachments/{attachment_id}"): EVERYONE,
    ("GET", "/api/tickets/{ticket_id}/snapshots/{snapshot_id}"): EVERYONE,
    ("POST", "/api/tickets/{ticket_id}/acknowledge"): frozenset({A, S, OP}),
    ("POST", "/api/tickets/{ticket_id}/dispatch"): frozenset({A, S, OP}),
    ("POST", "/api/tickets/{ticket_id}/start"): frozenset({A, S, W}),
    ("POST", "/api/tickets/{ticket_id}/resolve"): frozenset({A, S, W}),
    ("POST", "/api/tickets/{ticket_id}/photos"): frozenset({A, S, W}),
    ("POST", "/api/tickets/{ticket_id}/close"): frozenset({A, S, OP}),
    ("POST", "/api/tickets/{ticket_id}/reopen"): frozenset({A, S, OP}),
    ("GET", "/api/devices"): frozenset({A, S, OP}),
    ("GET", "/api/devices/{device_id}"): frozenset({A, S, OP}),
    ("POST", "/api/devices"): frozenset({A, S}),
    ("GET", "/api/devices/{device_id}/metrics/{series}"): frozenset({A, S, OP}),
    ("GET", "/api/devices/{device_id}/latest"): frozenset({A, S, OP}),
    ("GET", "/api/grids"): EVERYONE,
    ("PUT", "/api/grids/{grid_id}"): frozenset({A, S}),
    ("GET", "/api/grids/{grid_id}/shifts"): EVERYONE,
    ("POST", "/api/grids/{grid_id}/shifts"): frozenset({A, S}),
    ("GET", "/api/users"): frozenset({A, S}),
    ("POST", "/api/users"): frozenset({A}),
    ("GET", "/api/dead-letters"): frozenset({A, S}),
    ("POST", "/api/webhooks"): frozenset({A}),
}

USER_OF = {A: "admin", S: "sup", OP: "op", W: "worker"}
PATH_VALUES = {
    "ticket_id": "1",
    "attachment_id": "1",
    "snapshot_id": "snap-1",
    "device_id": "cam-a",
    "series": "power",
    "grid_id": f"g-{SITE}",
}
GRID = {
    "grid_id": f"g-{SITE}",
    "site_id": SITE,
    "name": "G",
    "supervisor": "sup",
    "zones": ["zone-a"],
}
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/login"): {"json": {"username": "admin", "password": PASSWORD}},
    ("POST", "/api/tickets/{ticket_id}/dispatch"): {"json": {"assignee": "worker"}},
    ("POST", "/api/tickets/{ticket_id}/resolve"): {"json": {"note": "done"}},
    ("POST", "/api/tickets/{ticket_id}/reopen"): {"json": {"note": "again"}},
    ("POST", "/api/tickets/{ticket_id}/photos"): {
        "files": {"file": ("p.jpg", encoded(".jpg"), "image/jpeg")}
    },
    ("POST", "/api/devices"): {"json": {"device_id": "cam-n", "site_id": SITE, "kind": "camera"}},
    ("PUT", "/api/grids/{grid_id}"): {"json": GRID},
    ("POST", "/api/grids/{grid_id}/shifts"): {
        "json": {"username": "worker", "starts_at": 0, "ends_at": 1}
    },
    ("POST", "/api/users"): {
        "json": {
            "username": "u-new",
            "password": "long enough pw",
            "role": "worker",
            "sites": [SITE],
        }
    },
    ("POST", "/api/webhooks"): {"json": {"url": "http://127.0.0.1:9/x", "flavour": "wecom"}},
    ("GET", "/api/stream"): {"params": {"max_events": 1}},
}


def _permission_of(route: APIRoute) -> Permission | None:
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        found = getattr(dep.call, "permission", None)
        if found is not None:
            return Permission(found)
        stack.extend(dep.dependencies)
    return None


def test_every_route_is_in_the_documented_matrix() -> None:
    from gateway.api import registry, session, telemetry, tickets
    from gateway.main import create_app

    app = create_app(settings_for("sqlite://"))
    served = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    assert served == set(MATRIX)
    routes = [
        r
        for router in (session.router, tickets.router, registry.router, telemetry.router)
        for r in router.routes
        if isinstance(r, APIRoute)
    ]
    assert {(m, r.path) for r in routes for m in r.methods or ()} == served
    for route in routes:
        for method in route.methods or ():
            expected = MATRIX[(method, route.path)]
            permission = _permission_of(route)
            if expected is None or route.path == "/api/me":
                assert permission is None
                continue
            assert permission is not None, f"{method} {route.path} has no permission check"
            assert PERMISSIONS[permission] == expected, (method, route.path)


def test_role_matrix_against_running_app(sqlite_url: str) -> None:
    seed_users(sqlite_url)
    store = Store(sqlite_url)
    seed_site(store, SITE, ("cam-a",))
    now = time.time()
    message = event(SITE, "cam-a", "ev-roles-0001", ts=now)
    IngestHandler(store, dict(DEFAULT_POLICIES)).handle(topic_of(message), c.encode(message), now)
    store.close()
    with running_app(settings_for(sqlite_url)) as client:
        headers = {role: token(client, user) for role, user in USER_OF.items()}
        # Give the ticket to the worker so ownership does not mask the role check.
        r = client.post("/api/tickets/1/dispatch", headers=headers[A], json={"assignee": "worker"})
        assert r.status_code == 200
        failures: list[str] = []
        for (method, path), allowed in MATRIX.items():
            url = path
            for name, value in PATH_VALUES.items():
                url = url.replace("{" + name + "}", value)
            kwargs = BODIES.get((method, path), {})
            anonymous = client.request(method, url, **kwargs).status_code
            if allowed is None:
                if anonymous in (401, 403):
                    failures.append(f"{method} {path}: public route answered {anonymous}")
                continue
            if anonymous != 401:
                failures.append(f"{method} {path}: no token answered {anonymous}, not 401")
            for role in Role:
                status = client.request(method, url, headers=headers[role], **kwargs).status_code
                if role in allowed and status in (401, 403):
                    failures.append(f"{method} {path} as {role.value}: denied ({status})")
                if role not in allowed and status != 403:
                    failures.append(f"{method} {path} as {role.value}: {status}, expected 403")
        assert failures == []
