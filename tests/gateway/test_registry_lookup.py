"""Ingest looks a batch's devices up in the registry at once (`Store.devices.device_sites`), and a
batch's registry decisions are those of one message at a time."""

from __future__ import annotations

import time

import contract as c
from gateway.ingest import IngestHandler, Outcome
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store
from tests.gateway.factories import event, seed_site, topic_of


def test_device_sites_names_each_registered_device_once(db_url: str) -> None:
    store = Store(db_url)
    cameras = tuple(f"cam-{i:04d}" for i in range(1200))  # more than one query's 500
    seed_site(store, "site-1", cameras[:700])
    seed_site(store, "site-2", cameras[700:])
    asked = [*cameras, "cam-unknown", cameras[0]]
    sites = store.devices.device_sites(asked)
    assert sites == {d: "site-1" if i < 700 else "site-2" for i, d in enumerate(cameras)}
    assert store.devices.device_sites([]) == {}
    store.close()


def test_a_batch_refuses_unknown_and_moved_devices_as_one_by_one(db_url: str) -> None:
    store = Store(db_url)
    seed_site(store, "site-1", ("cam-a", "cam-b"))
    seed_site(store, "site-2", ("cam-z",))
    now = time.time()
    messages = [
        event("site-1", "cam-a", "ev-reg-0001", ts=now),
        event("site-1", "cam-ghost", "ev-reg-0002", ts=now),  # not registered
        event("site-1", "cam-z", "ev-reg-0003", ts=now),  # registered at site-2
        event("site-1", "cam-b", "ev-reg-0004", ts=now, zone_id="zone-b"),
    ]
    pairs = [(topic_of(m), c.encode(m)) for m in messages]
    results = IngestHandler(store, dict(DEFAULT_POLICIES)).handle_batch(pairs, now)
    assert [r.outcome for r in results] == [
        Outcome.ACCEPTED,
        Outcome.DEAD_LETTER,
        Outcome.DEAD_LETTER,
        Outcome.ACCEPTED,
    ]
    assert "not registered" in (results[1].reason or "")
    assert "registered at site 'site-2'" in (results[2].reason or "")
    store.close()
