"""`PUT /api/devices/{id}/site` checks site scope on both ends, like every write: the
device's current site and the target site must both be the caller's.

Only admins may move devices and admins have every site today, so the route is driven with a
site-restricted admin through FastAPI's dependency override of the caller (the route, its
checks and the store are the real ones); the store's own check is tried directly.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from gateway.api.deps import get_principal
from gateway.auth import Principal, Role
from gateway.models import GridPublic
from gateway.store import Store
from gateway.store.scope import OutOfScopeError
from tests.gateway.apphelpers import OTHER_SITE, SITE, running_app, seed_users, settings_for

THIRD_SITE = "site-3"


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    seed_users(db_url)
    store = Store(db_url)
    for grid, site in (("north", SITE), ("south", OTHER_SITE), ("east", THIRD_SITE)):
        store.grids.upsert_grid(GridPublic(grid_id=grid, site_id=site, name=grid, supervisor=None))
    store.devices.upsert_device("cam-a", SITE, "camera", grid_id="north")
    store.devices.upsert_device("cam-c", THIRD_SITE, "camera", grid_id="east")
    store.close()
    with running_app(settings_for(db_url)) as test_client:
        yield test_client


def as_admin_of(client: TestClient, *sites: str) -> None:
    caller = Principal("admin", Role.ADMIN, frozenset(sites))
    client.app.dependency_overrides[get_principal] = lambda: caller  # type: ignore[attr-defined]


def site_of(db_url: str, device_id: str) -> str | None:
    store = Store(db_url)
    try:
        found = store.devices.find(device_id)
        return found.site_id if found is not None else None
    finally:
        store.close()


def test_move_needs_the_target_site_in_the_callers_scope(client: TestClient, db_url: str) -> None:
    as_admin_of(client, SITE)
    r = client.put("/api/devices/cam-a/site", json={"site_id": OTHER_SITE, "grid_id": "south"})
    assert r.status_code == 404, r.text
    assert r.json()["detail"] == f"site {OTHER_SITE!r} not found"
    assert site_of(db_url, "cam-a") == SITE


def test_move_needs_the_current_site_in_the_callers_scope(client: TestClient, db_url: str) -> None:
    as_admin_of(client, SITE)
    r = client.put("/api/devices/cam-c/site", json={"site_id": SITE, "grid_id": "north"})
    assert r.status_code == 404, r.text
    assert THIRD_SITE not in r.text
    assert site_of(db_url, "cam-c") == THIRD_SITE


def test_move_within_the_callers_sites_goes_through(client: TestClient, db_url: str) -> None:
    as_admin_of(client, SITE, OTHER_SITE)
    r = client.put("/api/devices/cam-a/site", json={"site_id": OTHER_SITE, "grid_id": "south"})
    assert r.status_code == 200, r.text
    assert site_of(db_url, "cam-a") == OTHER_SITE


def test_the_store_checks_both_sites_in_the_moves_transaction(db_url: str) -> None:
    seed_users(db_url)
    store = Store(db_url)
    try:
        store.devices.upsert_device("cam-a", SITE, "camera")
        with pytest.raises(OutOfScopeError):
            store.devices.move_device("cam-a", OTHER_SITE, grid_id=None, zone_id=None, scope=[SITE])
        with pytest.raises(OutOfScopeError):
            store.devices.move_device("cam-a", SITE, grid_id=None, zone_id=None, scope=[OTHER_SITE])
        assert site_of(db_url, "cam-a") == SITE
        store.devices.move_device("cam-a", OTHER_SITE, grid_id=None, zone_id=None, scope=None)
        assert site_of(db_url, "cam-a") == OTHER_SITE
    finally:
        store.close()
