"""A reopened ticket starts a new SLA cycle on a real database: fresh deadlines from the
reopen time, the tier reached so far kept, and each breach escalated once per cycle, also
when two replicas run the SLA clock at the same moment."""

from __future__ import annotations

import threading

import pytest

import contract as c
from gateway.ingest import IngestHandler
from gateway.lifecycle import Action, TicketState
from gateway.sla import DEFAULT_POLICIES, TicketCategory
from gateway.store import Store
from tests.gateway.factories import T0, event, seed_site, topic_of

SITE = "site-r"
M = 60.0
H = 3600.0
PARKING = DEFAULT_POLICIES[TicketCategory.ILLEGAL_PARKING]  # ack 20 min, resolve 30 min
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


@pytest.fixture
def handler(store: Store) -> IngestHandler:
    seed_site(store, SITE, ("cam-a", "cam-b", "cam-c"))
    return IngestHandler(store, dict(DEFAULT_POLICIES), cooldown_s=600)


def send(handler: IngestHandler, message: c.Message, now: float) -> None:
    handler.handle(topic_of(message), c.encode(message), now)


def escalate(store: Store, now: float) -> list[tuple[str, int, int]]:
    """Run the SLA clock once at `now`: (breach, from tier, to tier) recorded."""
    done = store.escalations.run_escalations(now, dict(DEFAULT_POLICIES))
    return [(e.breach.value, int(e.from_tier), int(e.to_tier)) for e, _ in done]


def test_cooldown_reopen_restarts_the_sla_clock_and_keeps_the_tier(
    handler: IngestHandler, store: Store
) -> None:
    send(handler, event(SITE, "cam-a", "ev-00000001"), T0)
    assert escalate(store, T0 + 21 * M) == [("ack", 1, 2)]
    end = event(SITE, "cam-a", "ev-00000001", phase=c.EventPhase.END, seq=1)
    send(handler, end, T0 + 22 * M)  # the car left: auto-resolved
    reopened_at = T0 + 25 * M
    send(handler, event(SITE, "cam-a", "ev-00000002"), reopened_at)  # back within the cool-down
    page = store.tickets.list_tickets()
    assert page.total == 1
    ticket = page.items[0]
    assert ticket.state is TicketState.NEW
    assert (ticket.ack_due_at, ticket.resolve_due_at) == (
        reopened_at + 20 * M,
        reopened_at + 30 * M,
    )
    assert ticket.acknowledged_at is None
    assert ticket.tier == 2  # kept: the supervisor still owns it
    assert ticket.sla_cycle == 1
    # The first cycle's resolve deadline (T0 + 30 min) no longer applies.
    assert escalate(store, T0 + 31 * M) == []
    assert escalate(store, reopened_at + 20 * M - 1) == []
    assert escalate(store, reopened_at + 20 * M) == [("ack", 2, 3)]
    assert escalate(store, reopened_at + 20 * M) == []  # once
    assert escalate(store, reopened_at + 30 * M) == [("resolve", 3, 3)]
    detail = store.tickets.get_ticket(ticket.id)
    assert [(e.cycle, e.breach, e.to_tier) for e in detail.escalations] == [
        (0, "ack", 2),
        (1, "ack", 3),
        (1, "resolve", 3),
    ]
    assert detail.escalations[1].handoff_to == "traffic police (交警)"
    reopen = [a for a in detail.audit if a.action == "reopen"]
    assert len(reopen) == 1
    assert reopen[0].detail["sla_cycle"] == 1
    assert reopen[0].detail["ack_due_at"] == reopened_at + 20 * M


def test_reopen_after_every_breach_escalates_again(handler: IngestHandler, store: Store) -> None:
    """Before: the (ticket, breach) rows of the first cycle blocked every later breach."""
    send(handler, event(SITE, "cam-a", "ev-00000001"), T0)
    assert escalate(store, T0 + 61 * M) == [("ack", 1, 2), ("resolve", 2, 3), ("resolve_2", 3, 3)]
    tid = store.tickets.list_tickets().items[0].id
    store.tickets.add_attachment(
        tid, JPEG, content_type="image/jpeg", actor="sup-1", now=T0 + 62 * M
    )
    store.tickets.transition(
        tid, Action.RESOLVE, "sup-1", T0 + 62 * M, note="towed", policy=PARKING
    )
    store.tickets.transition(tid, Action.CLOSE, "op", T0 + 63 * M, policy=PARKING)
    reopened_at = T0 + 3 * H
    ticket, _ = store.tickets.transition(
        tid, Action.REOPEN, "op", reopened_at, note="car is back", policy=PARKING
    )
    assert (ticket.ack_due_at, ticket.resolve_due_at) == (
        reopened_at + 20 * M,
        reopened_at + 30 * M,
    )
    assert ticket.sla_cycle == 1
    assert escalate(store, reopened_at + 19 * M) == []
    assert escalate(store, reopened_at + 20 * M) == [("ack", 3, 3)]
    assert escalate(store, reopened_at + 61 * M) == [("resolve", 3, 3), ("resolve_2", 3, 3)]
    assert escalate(store, reopened_at + 5 * H) == []


def test_reopen_of_a_ticket_handled_in_time_does_not_escalate_at_once(
    handler: IngestHandler, store: Store
) -> None:
    """Before: acknowledged and resolved in time, reopened later: the first cycle's passed
    resolve deadline made it breach the moment it was reopened."""
    send(handler, event(SITE, "cam-a", "ev-00000001"), T0)
    tid = store.tickets.list_tickets().items[0].id
    store.tickets.transition(tid, Action.ACKNOWLEDGE, "op", T0 + 5 * M, policy=PARKING)
    store.tickets.add_attachment(
        tid, JPEG, content_type="image/jpeg", actor="sup-1", now=T0 + 9 * M
    )
    store.tickets.transition(
        tid, Action.RESOLVE, "sup-1", T0 + 10 * M, note="towed", policy=PARKING
    )
    assert escalate(store, T0 + 2 * H) == []
    reopened_at = T0 + 2 * H
    ticket, _ = store.tickets.transition(
        tid, Action.REOPEN, "op", reopened_at, note="car is back", policy=PARKING
    )
    assert escalate(store, reopened_at + 1) == []
    assert ticket.acknowledged_at is None  # it must be acknowledged again
    assert escalate(store, reopened_at + 20 * M) == [("ack", 1, 2)]


def test_two_replicas_escalate_each_breach_once_per_cycle(db_url: str) -> None:
    """Two Stores (two engines, as two gateway processes have) run the SLA clock at the same
    instant on reopened tickets: the database lets one of them record each breach."""
    setup = Store(db_url)
    seed_site(setup, SITE, ("cam-a", "cam-b", "cam-c"))
    handler = IngestHandler(setup, dict(DEFAULT_POLICIES), cooldown_s=600)
    devices = ("cam-a", "cam-b", "cam-c")
    for n, device in enumerate(devices):
        send(handler, event(SITE, device, f"ev-{n}-00000001"), T0)
    assert len(escalate(setup, T0 + 21 * M)) == len(devices)  # cycle 0: ack, L1 → L2
    for n, device in enumerate(devices):
        end = event(SITE, device, f"ev-{n}-00000001", phase=c.EventPhase.END, seq=1)
        send(handler, end, T0 + 22 * M)
        send(handler, event(SITE, device, f"ev-{n}-00000002"), T0 + 25 * M)  # reopened
    setup.close()

    replicas = [Store(db_url), Store(db_url)]
    barrier = threading.Barrier(len(replicas))
    found: list[list[tuple[str, int, int]]] = [[] for _ in replicas]
    errors: list[BaseException] = []

    def run(i: int, now: float) -> None:
        try:
            barrier.wait(timeout=10)
            found[i] += escalate(replicas[i], now)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    try:
        for now in (T0 + 45 * M, T0 + 45 * M, T0 + 86 * M):
            threads = [threading.Thread(target=run, args=(i, now)) for i in range(len(replicas))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
        assert errors == []
        recorded = sorted(found[0] + found[1])
        per_ticket = [("ack", 2, 3), ("resolve", 3, 3), ("resolve_2", 3, 3)]
        assert recorded == sorted(per_ticket * len(devices))
        for ticket in replicas[0].tickets.list_tickets().items:
            cycles = [
                (e.cycle, e.breach) for e in replicas[0].tickets.get_ticket(ticket.id).escalations
            ]
            assert sorted(cycles) == [(0, "ack"), (1, "ack"), (1, "resolve"), (1, "resolve_2")]
    finally:
        for replica in replicas:
            replica.close()


def test_sla_clock_runs_past_a_recorded_cut_off_escalation(
    handler: IngestHandler, store: Store
) -> None:
    """A relay cut-off nobody confirmed is recorded as an escalations row (breach
    'cut_off'), which is no SLA breach; the SLA clock must still escalate the ticket (it
    used to raise on that row at every tick, and no ticket escalated any more)."""
    send(handler, event(SITE, "cam-a", "ev-00000001"), T0)
    active_key = store.tickets.list_tickets().items[0]
    key = f"{SITE}|cam-a|{active_key.category.value}|{active_key.zone_id}"
    assert store.sensors.escalate_unconfirmed_cutoff(key, "relay still on", T0 + M) is not None
    assert escalate(store, T0 + 21 * M) == [("ack", 2, 3)]
