"""Site scope on every write (issue 8, finding 6): a supervisor, operator or admin can never
reach into a site outside their scope, nor wire one site's objects to another's.

Two sites: site-1 (grid `north`, device `cam-a`, supervisor `sup`) and site-2 (grid `south`
with zone `zone-s`, device `cam-b` with health data, supervisor `sup-b`, worker `worker-b`).
`sup-ab` supervises both. Each test is one attack; it must be refused without changing
anything and without telling the caller anything about site-2 beyond "taken".
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

import contract as c
from gateway.auth import Role, hash_password
from gateway.ingest import IngestHandler, Outcome
from gateway.models import GridPublic
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store
from tests.gateway.apphelpers import (
    OTHER_SITE,
    PASSWORD,
    SITE,
    running_app,
    seed_users,
    settings_for,
    token,
)
from tests.gateway.factories import event, heartbeat, topic_of
from tests.gateway.imagedata import encoded

EXTRA_USERS = {
    "sup-b": (Role.SUPERVISOR, [OTHER_SITE]),
    "worker-b": (Role.WORKER, [OTHER_SITE]),
    "sup-ab": (Role.SUPERVISOR, [SITE, OTHER_SITE]),
}
SECRET_HEALTH = "firmware-7f3a-secret"  # cam-b's health: must never show outside site-2


@dataclass
class Sites:
    client: TestClient
    db_url: str

    def as_(self, user: str) -> dict[str, str]:
        return token(self.client, user)

    def store(self) -> Store:
        return Store(self.db_url)


@pytest.fixture
def sites(db_url: str) -> Iterator[Sites]:
    seed_users(db_url)
    store = Store(db_url)
    hashed = hash_password(PASSWORD)
    for name, (role, user_sites) in EXTRA_USERS.items():
        store.users.create_user(name, hashed, role, user_sites)
    store.grids.upsert_grid(GridPublic(grid_id="north", site_id=SITE, name="N", supervisor="sup"))
    store.grids.upsert_grid(
        GridPublic(
            grid_id="south", site_id=OTHER_SITE, name="S", supervisor="sup-b", zones=["zone-s"]
        )
    )
    store.devices.upsert_device("cam-a", SITE, "camera", grid_id="north", zone_id="zone-n")
    store.devices.upsert_device("cam-b", OTHER_SITE, "camera", grid_id="south", zone_id="zone-s")
    handler = IngestHandler(store, dict(DEFAULT_POLICIES))
    now = time.time()
    beat = heartbeat(OTHER_SITE, "cam-b", ts=now).model_copy(
        update={"software_version": SECRET_HEALTH}
    )
    handler.handle(topic_of(beat), c.encode(beat), now)
    first = event(SITE, "cam-a", "ev-scope-a-0001", zone_id="zone-n", ts=now)
    handler.handle(topic_of(first), c.encode(first), now)
    store.close()
    with running_app(settings_for(db_url)) as client:
        yield Sites(client, db_url)


def _device(sites: Sites, device_id: str) -> dict[str, object]:
    r = sites.client.get(f"/api/devices/{device_id}", headers=sites.as_("admin"))
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def _assert_no_leak(text: str) -> None:
    for secret in (SECRET_HEALTH, "sup-b", "zone-s", OTHER_SITE):
        assert secret not in text, f"error leaks {secret!r}: {text}"


def test_supervisor_cannot_take_another_sites_device(sites: Sites) -> None:
    before = _device(sites, "cam-b")
    assert SECRET_HEALTH in str(before["health"])
    r = sites.client.post(
        "/api/devices",
        headers=sites.as_("sup"),
        json={"device_id": "cam-b", "site_id": SITE, "kind": "camera"},
    )
    assert r.status_code == 409, r.text
    _assert_no_leak(r.text)
    assert _device(sites, "cam-b") == before
    # site-2's alerts from cam-b still open tickets there (before: dead-lettered).
    store = sites.store()
    try:
        now = time.time()
        alert = event(OTHER_SITE, "cam-b", "ev-scope-b-0001", zone_id="zone-s", ts=now)
        result = IngestHandler(store, dict(DEFAULT_POLICIES)).handle(
            topic_of(alert), c.encode(alert), now
        )
        assert result.outcome is Outcome.ACCEPTED
    finally:
        store.close()


def test_device_changes_site_only_through_the_admin_route(sites: Sites) -> None:
    body = {"device_id": "cam-b", "site_id": SITE, "kind": "camera"}
    # Even a supervisor of both sites, and an admin, cannot move it by re-registering it.
    for user in ("sup-ab", "admin"):
        r = sites.client.post("/api/devices", headers=sites.as_(user), json=body)
        assert r.status_code == 409, (user, r.text)
        assert "/site" in r.json()["detail"]  # names the admin route
    assert _device(sites, "cam-b")["site_id"] == OTHER_SITE
    move = {"site_id": SITE, "grid_id": "north"}
    r = sites.client.put("/api/devices/cam-b/site", headers=sites.as_("sup-ab"), json=move)
    assert r.status_code == 403, r.text
    assert _device(sites, "cam-b")["site_id"] == OTHER_SITE
    r = sites.client.put("/api/devices/cam-b/site", headers=sites.as_("admin"), json=move)
    assert r.status_code == 200, r.text
    moved = _device(sites, "cam-b")
    assert (moved["site_id"], moved["grid_id"], moved["zone_id"]) == (SITE, "north", None)


def test_supervisor_cannot_take_another_sites_grid(sites: Sites) -> None:
    grid = {"grid_id": "south", "site_id": SITE, "name": "mine now", "supervisor": "sup"}
    r = sites.client.put("/api/grids/south", headers=sites.as_("sup"), json=grid)
    assert r.status_code == 409, r.text
    _assert_no_leak(r.text)
    # A grid's site never changes, even for a supervisor of both sites.
    r = sites.client.put("/api/grids/south", headers=sites.as_("sup-ab"), json=grid)
    assert r.status_code == 409, r.text
    grids = sites.client.get("/api/grids", headers=sites.as_("admin")).json()
    south = next(g for g in grids if g["grid_id"] == "south")
    assert south == {
        "grid_id": "south",
        "site_id": OTHER_SITE,
        "name": "S",
        "supervisor": "sup-b",
        "zones": ["zone-s"],
    }


def test_devices_attach_only_to_grids_of_their_own_site(sites: Sites) -> None:
    sup = sites.as_("sup")
    for device_id in ("cam-a", "cam-new"):
        body = {"device_id": device_id, "site_id": SITE, "kind": "camera", "grid_id": "south"}
        r = sites.client.post("/api/devices", headers=sup, json=body)
        assert r.status_code == 422, r.text
        _assert_no_leak(r.text)
    assert _device(sites, "cam-a")["grid_id"] == "north"
    assert sites.client.get("/api/devices/cam-new", headers=sites.as_("admin")).status_code == 404
    # The rule is about data, not roles: an admin cannot cross-wire sites either.
    body = {"device_id": "cam-a", "site_id": SITE, "kind": "camera", "grid_id": "south"}
    assert sites.client.post("/api/devices", headers=sites.as_("admin"), json=body).status_code == (
        422
    )


def test_roster_names_exist_and_belong_to_the_grids_site(sites: Sites) -> None:
    sup = sites.as_("sup")
    for outsider in ("worker-b", "nobody-at-all"):
        shift = {"username": outsider, "starts_at": 0, "ends_at": 4e9}
        r = sites.client.post("/api/grids/north/shifts", headers=sup, json=shift)
        assert r.status_code == 422, (outsider, r.text)
        _assert_no_leak(r.text)
    assert sites.client.get("/api/grids/north/shifts", headers=sup).json() == []
    shift = {"username": "worker", "starts_at": 0, "ends_at": 4e9}
    assert sites.client.post("/api/grids/north/shifts", headers=sup, json=shift).status_code == 201


def test_grid_supervisor_exists_and_belongs_to_the_site(sites: Sites) -> None:
    sup = sites.as_("sup")
    for outsider in ("sup-b", "nobody-at-all"):
        grid = {"grid_id": "north", "site_id": SITE, "name": "N", "supervisor": outsider}
        r = sites.client.put("/api/grids/north", headers=sup, json=grid)
        assert r.status_code == 422, (outsider, r.text)
    grids = sites.client.get("/api/grids", headers=sup).json()
    assert [g["supervisor"] for g in grids if g["grid_id"] == "north"] == ["sup"]


def test_dispatch_only_to_members_of_the_tickets_site(sites: Sites) -> None:
    op = sites.as_("op")
    ticket = sites.client.get("/api/tickets", headers=op).json()["items"][0]
    tid, routed_to = ticket["id"], ticket["assignee"]  # the grid's supervisor, by routing
    for outsider in ("worker-b", "nobody-at-all"):
        r = sites.client.post(
            f"/api/tickets/{tid}/dispatch", headers=op, json={"assignee": outsider}
        )
        assert r.status_code == 422, (outsider, r.text)
        _assert_no_leak(r.text)
    after = sites.client.get(f"/api/tickets/{tid}", headers=op).json()
    assert (after["state"], after["assignee"]) == (ticket["state"], routed_to)
    r = sites.client.post(f"/api/tickets/{tid}/dispatch", headers=op, json={"assignee": "worker"})
    assert r.status_code == 200, r.text
    assert r.json()["assignee"] == "worker"


def _new_user(name: str, role: str, user_sites: list[str]) -> dict[str, object]:
    return {"username": name, "password": "long enough pw", "role": role, "sites": user_sites}


def test_no_user_gets_more_sites_or_a_higher_role_than_its_creator(sites: Sites) -> None:
    admin, sup = sites.as_("admin"), sites.as_("sup")
    post = sites.client.post
    # Only admins have every site.
    for role in ("operator", "supervisor", "worker"):
        r = post("/api/users", headers=admin, json=_new_user(f"{role}-all", role, ["*"]))
        assert r.status_code == 422, (role, r.text)
    r = post("/api/users", headers=admin, json=_new_user("mixed", "worker", [SITE, "*"]))
    assert r.status_code == 422, r.text
    # A supervisor onboards people of its own sites, at most at its own level.
    r = post("/api/users", headers=sup, json=_new_user("w-new", "worker", [SITE]))
    assert r.status_code == 201, r.text
    assert r.json()["sites"] == [SITE]
    for body in (
        _new_user("w-b", "worker", [OTHER_SITE]),
        _new_user("w-ab", "worker", [SITE, OTHER_SITE]),
        _new_user("a-new", "admin", ["*"]),
    ):
        r = post("/api/users", headers=sup, json=body)
        assert r.status_code == 403, (body, r.text)
    names = {u["username"] for u in sites.client.get("/api/users", headers=admin).json()}
    assert {"w-b", "w-ab", "a-new", "operator-all", "mixed"}.isdisjoint(names)
    # Users shared with another site show only the sites the caller has.
    listed = {u["username"]: u["sites"] for u in sites.client.get("/api/users", headers=sup).json()}
    assert listed["sup-ab"] == [SITE]
    assert "sup-b" not in listed


def test_the_store_keeps_every_site_for_admins_only(store: Store) -> None:
    """The same rule for users made outside the API (`guanjia gateway user-add`)."""
    with pytest.raises(ValueError, match="only admins have"):
        store.users.create_user("op-all", "x", Role.OPERATOR, ["*"])
    with pytest.raises(ValueError, match="admins have exactly"):
        store.users.create_user("admin-one", "x", Role.ADMIN, [SITE])
    assert store.users.user("op-all") is None
    assert store.users.create_user("op-one", "x", Role.OPERATOR, [SITE]).sites == [SITE]


def test_another_sites_objects_answer_exactly_like_missing_ones(sites: Sites) -> None:
    """404 with one text: a caller cannot tell "elsewhere" from "nowhere"."""
    sup, sup_b = sites.as_("sup"), sites.as_("sup-b")
    tid = sites.client.get("/api/tickets", headers=sup).json()["items"][0]["id"]
    files = {"file": ("p.jpg", encoded(".jpg"), "image/jpeg")}
    photo = sites.client.post(f"/api/tickets/{tid}/photos", headers=sup, files=files).json()
    aid = photo["id"]
    pairs = [  # (site-1's object as seen from site-2, a missing one), with their ids
        (f"/api/tickets/{tid}", "/api/tickets/999999", str(tid), "999999"),
        (photo["url"], f"/api/tickets/{tid}/attachments/999999", str(aid), "999999"),
        ("/api/devices/cam-a", "/api/devices/cam-zz", "cam-a", "cam-zz"),
        ("/api/grids/north/shifts", "/api/grids/nowhere/shifts", "north", "nowhere"),
        ("/api/devices/cam-a/commands", "/api/devices/cam-zz/commands", "cam-a", "cam-zz"),
    ]
    for elsewhere, nowhere, id_a, id_b in pairs:
        a = sites.client.get(elsewhere, headers=sup_b)
        b = sites.client.get(nowhere, headers=sup_b)
        assert (a.status_code, b.status_code) == (404, 404), (elsewhere, a.text, b.text)
        assert a.json()["detail"].replace(id_a, "ID") == b.json()["detail"].replace(id_b, "ID")
