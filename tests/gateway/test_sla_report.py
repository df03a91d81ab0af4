"""SLA performance: the pure report over ticket facts, and the store query that reads the
facts (site scope, the time window, breach counts) — on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import contract as c
from gateway.ingest import IngestHandler
from gateway.lifecycle import Action
from gateway.models import SlaFact
from gateway.sla import DEFAULT_POLICIES, MINUTE, Breach, TicketCategory
from gateway.sla_report import (
    RESOLUTION_BINS_S,
    RESPONSE_BINS_S,
    build_report,
    histogram,
    respond_target_s,
)
from gateway.store import Store
from tests.gateway.factories import event, seed_site, topic_of


def _fact(**values: object) -> SlaFact:
    base: dict[str, object] = {
        "ticket_id": 1,
        "site_id": "s",
        "grid_id": "g1",
        "category": "litter",
        "severity": "normal",
        "created_at": 0.0,
        "acknowledged_at": None,
        "resolved_at": None,
        "breaches": 0,
    }
    base.update(values)
    return SlaFact.model_validate(base)


def test_histogram_edges_are_inclusive_and_the_last_bin_holds_the_rest() -> None:
    assert histogram([0, 5, 5.1, 10, 99], (5, 10)) == [2, 2, 1]
    assert histogram([], (5,)) == [0, 0]


def test_emergencies_have_the_shorter_response_target() -> None:
    assert respond_target_s(_fact()) == 20 * MINUTE
    assert respond_target_s(_fact(severity="urgent")) == 15 * MINUTE
    assert respond_target_s(_fact(category="fire_alarm")) == 15 * MINUTE


def test_report_against_the_field_targets() -> None:
    policies = dict(DEFAULT_POLICIES)
    facts = [
        # responded in 4 min, resolved in 25 min: both in target
        _fact(ticket_id=1, acknowledged_at=4 * MINUTE, resolved_at=25 * MINUTE),
        # urgent, responded in 17 min (> 15): late; resolved in 50 min (> 30): late, breached
        _fact(
            ticket_id=2,
            grid_id="g2",
            severity="urgent",
            acknowledged_at=17 * MINUTE,
            resolved_at=50 * MINUTE,
            breaches=2,
        ),
        # resolved straight away without an acknowledgement: responded at resolution
        _fact(ticket_id=3, category="fire_lane_blocked", resolved_at=3 * MINUTE),
        # nothing yet
        _fact(ticket_id=4, grid_id=None),
    ]
    report = build_report(facts, policies)
    assert report.tickets == 4
    assert report.awaiting_response == 1
    assert sum(report.response_counts) == 3
    assert report.response_counts[0] == 2  # 4 min and 3 min are ≤ 5 min
    assert report.response_counts[RESPONSE_BINS_S.index(20 * MINUTE)] == 1  # 17 min
    assert sum(report.resolution_counts) == 3
    assert report.resolution_counts[RESOLUTION_BINS_S.index(HOUR_)] == 1  # 50 min
    assert (report.responded_within_target.hits, report.responded_within_target.total) == (2, 3)
    assert (report.resolved_within_target.hits, report.resolved_within_target.total) == (2, 3)
    assert report.breaches_by_grid["g2"].percent == 100.0
    assert report.breaches_by_grid["g1"].percent == 0.0
    assert report.breaches_by_grid[""].total == 1  # no grid
    assert report.breaches_by_category["litter"].hits == 1
    assert build_report([], policies).responded_within_target.percent is None


HOUR_ = 60 * MINUTE


def test_the_store_reads_facts_in_scope_and_window(store: Store) -> None:
    seed_site(store, "site-a", ("cam-a",))
    seed_site(store, "site-b", ("cam-b",))
    handler = IngestHandler(store, dict(DEFAULT_POLICIES))
    now = time.time()
    for site, device, n in (("site-a", "cam-a", 0), ("site-a", "cam-a", 1), ("site-b", "cam-b", 2)):
        message = event(site, device, f"ev-facts-{n:04d}", zone_id=f"z{n}", ts=now)
        assert handler.handle(topic_of(message), c.encode(message), now).outcome.value == (
            "accepted"
        )
    page = store.tickets.list_tickets(sites=["site-a"], sort="id")
    first, second = (t.id for t in page.items)
    policy = DEFAULT_POLICIES[TicketCategory.ILLEGAL_PARKING]
    store.tickets.transition(first, Action.ACKNOWLEDGE, "op", now + 60, policy=policy)
    store.tickets.transition(
        first,
        Action.RESOLVE,
        "op",
        now + 120,
        note="done",
        policy=policy.model_copy(update={"field_work": False}),
    )
    escalated = store.escalations.run_escalations(now + 10 * 3600, dict(DEFAULT_POLICIES))
    assert {e.breach for e, _ in escalated} >= {Breach.ACK}

    facts = {f.ticket_id: f for f in store.reports.sla_facts(sites=["site-a"], since=now - 60)}
    assert set(facts) == {first, second}  # site-b's ticket is not in scope
    assert facts[first].acknowledged_at == now + 60
    assert facts[first].resolved_at == now + 120
    assert facts[first].breaches == 0
    assert facts[second].breaches >= 1
    assert len(store.reports.sla_facts(sites=None, since=now - 60)) == 3
    assert store.reports.sla_facts(sites=["site-a"], since=now + 60) == []  # before the window


def test_tickets_sort_by_the_running_deadline(store: Store) -> None:
    seed_site(store, "site-a", ("cam-a",))
    handler = IngestHandler(store, dict(DEFAULT_POLICIES))
    now = time.time()
    categories = (c.EventCategory.LITTER, c.EventCategory.FIRE_LANE_BLOCKED)
    for n, category in enumerate(categories):
        message = event(
            "site-a", "cam-a", f"ev-sort-{n:04d}", zone_id=f"z{n}", ts=now, category=category
        )
        handler.handle(topic_of(message), c.encode(message), now)
    items = store.tickets.list_tickets(sort="deadline").items
    dues = [t.ack_due_at for t in items]
    assert dues == sorted(dues)
    assert items[0].category is TicketCategory.FIRE_LANE_BLOCKED  # the shorter clock first
