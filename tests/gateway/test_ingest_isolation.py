"""One device cannot reach into another's tickets or message ids (finding 7), and dead
letters are listed per site (finding 8)."""

from __future__ import annotations

import time

import pytest

import contract as c
from gateway.ingest import IngestHandler, Outcome
from gateway.lifecycle import TicketState
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store
from tests.gateway import apphelpers
from tests.gateway.apphelpers import running_app, seed_users, settings_for, token
from tests.gateway.factories import T0, event, jpeg, pair, seed_site, snapshot_ref

SITE_A, SITE_B = "site-a", "site-b"


@pytest.fixture
def handler(store: Store) -> IngestHandler:
    seed_site(store, SITE_A, ("cam-a1",))
    seed_site(store, SITE_B, ("cam-b1",))
    return IngestHandler(store, dict(DEFAULT_POLICIES), cooldown_s=600)


def test_ending_another_devices_event_id_does_not_touch_its_ticket(
    handler: IngestHandler, store: Store
) -> None:
    victim = event(SITE_B, "cam-b1", "ev-shared-0001")
    assert handler.handle(*pair(victim), T0).outcome is Outcome.ACCEPTED
    forged = event(SITE_A, "cam-a1", "ev-shared-0001", phase=c.EventPhase.END, seq=5)
    assert handler.handle(*pair(forged), T0 + 1).outcome is Outcome.ACCEPTED
    tickets_b = store.tickets.list_tickets(sites=[SITE_B]).items
    assert len(tickets_b) == 1
    assert tickets_b[0].state is TicketState.NEW
    assert [e.phase for e in store.tickets.get_ticket(tickets_b[0].id).evidence] == ["start"]
    # The forger's end landed on its own (new, resolved) ticket at its own site.
    tickets_a = store.tickets.list_tickets(sites=[SITE_A]).items
    assert [t.state for t in tickets_a] == [TicketState.RESOLVED]


def test_reusing_another_devices_msg_id_does_not_drop_its_event(
    handler: IngestHandler, store: Store
) -> None:
    squatted = "msg-future-0001"
    squatter = event(SITE_A, "cam-a1", "ev-squat-0001", msg_id=squatted)
    victim = event(SITE_B, "cam-b1", "ev-victim-0001", msg_id=squatted)
    results = handler.handle_batch([pair(squatter), pair(victim)], T0)
    assert [r.outcome for r in results] == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    # and across transactions, the victim's own redelivery still is a duplicate
    assert handler.handle(*pair(victim), T0 + 1).outcome is Outcome.DUPLICATE
    assert store.tickets.list_tickets(sites=[SITE_B]).total == 1


def test_snapshot_ids_are_per_device(handler: IngestHandler, store: Store) -> None:
    mine, theirs = jpeg(b"b1"), jpeg(b"a1")
    topic_b = str(c.snapshot_topic(SITE_B, "cam-b1", "snap-1"))
    topic_a = str(c.snapshot_topic(SITE_A, "cam-a1", "snap-1"))
    assert handler.handle(topic_a, theirs, T0).outcome is Outcome.ACCEPTED
    assert handler.handle(topic_b, mine, T0).outcome is Outcome.ACCEPTED
    ev = event(SITE_B, "cam-b1", "ev-snap-0001", snapshot=snapshot_ref("snap-1", mine))
    handler.handle(*pair(ev), T0 + 1)
    assert store.tickets.snapshot(SITE_B, "cam-b1", "snap-1") == mine


def test_dead_letters_are_listed_only_to_their_site(handler: IngestHandler, store: Store) -> None:
    handler.handle(f"guanjia/v1/{SITE_A}/cam-a1/event", b"{bad a", T0)
    handler.handle(f"guanjia/v1/{SITE_B}/cam-b1/event", b"{bad b", T0)
    handler.handle("guanjia/v1/no site here", b"{bad none", T0)
    handler.handle(f"guanjia/v2/{SITE_A}/cam-a1/event", b"{bad v2", T0)
    everything = store.inbox.list_dead_letters(None)
    assert len(everything) == 4
    only_a = store.inbox.list_dead_letters([SITE_A])
    assert [(d.site_id, d.device_id) for d in only_a] == [(SITE_A, "cam-a1")]
    assert only_a[0].payload_excerpt == "{bad a"
    assert [d.payload_excerpt for d in store.inbox.list_dead_letters([SITE_B])] == ["{bad b"]
    assert store.inbox.list_dead_letters([]) == []
    assert len(store.inbox.list_dead_letters([SITE_A, SITE_B], offset=1, limit=5)) == 1


def test_dead_letter_route_lists_the_callers_sites_only(db_url: str) -> None:
    seed_users(db_url)
    store = Store(db_url)
    now = time.time()  # the app's SLA loop prunes week-old dead letters on the real clock
    try:
        handler = IngestHandler(store, dict(DEFAULT_POLICIES))
        for site in (apphelpers.SITE, apphelpers.OTHER_SITE):
            handler.handle(f"guanjia/v1/{site}/cam-x/event", f"{{bad {site}".encode(), now)
        handler.handle("guanjia/v1/no site", b"{bad none", now)
    finally:
        store.close()
    with running_app(settings_for(db_url)) as client:
        mine = client.get("/api/dead-letters", headers=token(client, "sup"))
        every = client.get("/api/dead-letters", headers=token(client, "admin"))
    assert mine.status_code == every.status_code == 200
    assert [d["payload_excerpt"] for d in mine.json()] == [f"{{bad {apphelpers.SITE}"]
    assert len(every.json()) == 3
