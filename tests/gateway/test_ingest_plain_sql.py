"""Ingest's plain-driver statements on a real database: a write deferred because its row was
read locked must still change that row, and a driver's unique-key clash is the IntegrityError
`Store.ingest` reruns on (the rerun then sees the other writer's rows)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

import contract as c
from gateway.alerts import dedup_key
from gateway.ingest import IngestHandler, Outcome
from gateway.sla import DEFAULT_POLICIES, TicketCategory
from gateway.store import Store
from gateway.store import ingest_sql as sql
from gateway.store.ingest_tx import IngestTx
from tests.gateway.factories import T0, event, seed_site, topic_of

SITE = "site-p"


def open_ticket(store: Store) -> int:
    seed_site(store, SITE, ("cam-a",))
    handler = IngestHandler(store, dict(DEFAULT_POLICIES), cooldown_s=600)
    start = event(SITE, "cam-a", "ev-00001", phase=c.EventPhase.START)
    assert handler.handle(topic_of(start), c.encode(start), T0).outcome is Outcome.ACCEPTED
    (ticket,) = store.tickets.list_tickets().items
    return ticket.id


def test_a_deferred_update_whose_row_is_not_as_read_fails_and_reruns_the_transaction(
    store: Store,
) -> None:
    ticket_id = open_ticket(store)
    runs = []

    def stale(tx: IngestTx) -> None:
        runs.append(1)
        # Resolve "from acknowledged": the ticket is new, so the certain update is not.
        tx.plain.defer(sql.AUTO_RESOLVE, (T0, T0, T0, ticket_id, "acknowledged"))

    with pytest.raises(IntegrityError):
        store.ingest(stale, T0 + 1, attempts=2)
    assert len(runs) == 2
    assert store.tickets.get_ticket(ticket_id).state == "new"


def test_a_deferred_update_that_applies_is_committed(store: Store) -> None:
    ticket_id = open_ticket(store)
    store.ingest(
        lambda tx: tx.plain.defer(sql.AUTO_RESOLVE, (T0, T0, T0, ticket_id, "new")), T0 + 1
    )
    assert store.tickets.get_ticket(ticket_id).state == "resolved"


def test_a_unique_key_clash_on_the_driver_is_the_integrity_error_ingest_reruns_on(
    store: Store,
) -> None:
    ticket_id = open_ticket(store)
    ticket = store.tickets.get_ticket(ticket_id)
    key = dedup_key(SITE, "cam-a", TicketCategory(ticket.category), ticket.zone_id)
    row = (SITE, "cam-a", "illegal_parking", None, None, "normal", "new", 0, 0, None, key, key)
    runs = []

    def clash(tx: IngestTx) -> int:
        runs.append(1)
        return tx.plain.insert_id(sql.INSERT_TICKET, (*row, 1, T0, T0, T0 + 60, T0 + 600))

    with pytest.raises(IntegrityError):
        store.ingest(clash, T0 + 1, attempts=2)
    assert len(runs) == 2
    assert [t.id for t in store.tickets.list_tickets().items] == [ticket_id]


def test_reads_sent_together_answer_each_query_in_order_after_the_deferred_writes(
    store: Store,
) -> None:
    """`Driver.rows_in_all`: one pipeline on PostgreSQL, sent after the writes deferred
    before it (they apply first), each query's rows in its place, an empty list no query."""
    ticket_id = open_ticket(store)
    ticket = store.tickets.get_ticket(ticket_id)
    key = dedup_key(SITE, "cam-a", TicketCategory(ticket.category), ticket.zone_id)

    def read(tx: IngestTx) -> list[list[tuple[object, ...]]]:
        tx.plain.defer(sql.AUTO_RESOLVE, (T0, T0, T0, ticket_id, "new"))
        return tx.plain.rows_in_all(
            [
                (sql.DEVICES_IN, ["cam-a", "cam-none"], ()),
                (sql.PROCESSED_IN, [], ()),
                (sql.ACTIVE_IN, [key], ()),  # no longer open: resolved by the deferred write
                (sql.RECENT_IN, [key], (T0,)),
            ]
        )

    devices, processed, active, recent = store.ingest(read, T0 + 1)
    assert [row[:2] for row in devices] == [("cam-a", SITE)]
    assert processed == []
    assert active == []
    assert [(row[0], row[1], row[3]) for row in recent] == [(ticket_id, key, "resolved")]
