"""`Store` is one shared `Database` and one part per aggregate: every part runs on that one
database (one engine, one connection pool, one SQLite ingest lock), and the device registry
has one lookup that answers None and one that raises."""

from __future__ import annotations

import pytest

from gateway.store import NotFoundError, Store
from gateway.store.base import Part
from tests.support.seed import seed_site


def test_every_part_shares_the_stores_one_database(store: Store) -> None:
    parts = {name: part for name, part in vars(store).items() if isinstance(part, Part)}
    assert set(parts) == {
        "tickets", "escalations", "devices", "grids", "users", "inbox", "webhooks",
        "commands", "sensors", "reports", "rollouts", "residents", "rounds", "figures",
        "leases", "feed",
    }  # fmt: skip
    assert {id(part._db) for part in parts.values()} == {id(store.db)}
    assert store.engine is store.db.engine


def test_a_device_is_found_or_none_and_got_or_not_found(store: Store) -> None:
    seed_site(store, "s1", ("cam-a",))
    found = store.devices.find("cam-a")
    assert found is not None
    assert (found.device_id, found.site_id) == ("cam-a", "s1")
    assert store.devices.get("cam-a").site_id == "s1"
    assert store.devices.find("cam-missing") is None
    with pytest.raises(NotFoundError):
        store.devices.get("cam-missing")
