"""Table-driven SLA clock and 721-escalation tests with a fake clock (plain numbers)."""

from __future__ import annotations

import pytest

from contract import Severity
from gateway.sla import (
    DEFAULT_POLICIES,
    Breach,
    CategoryPolicy,
    ResolveClass,
    SlaFacts,
    TicketCategory,
    Tier,
    deadlines,
    due_escalations,
)

M = 60.0
H = 3600.0
T0 = 1_000_000.0


@pytest.mark.parametrize(
    ("category", "severity", "ack_s", "resolve_s"),
    [
        (TicketCategory.ILLEGAL_PARKING, Severity.NORMAL, 20 * M, 30 * M),
        (TicketCategory.ILLEGAL_PARKING, Severity.URGENT, 5 * M, 30 * M),
        (TicketCategory.LITTER, Severity.LOW, 20 * M, 30 * M),
        (TicketCategory.FIRE_LANE_BLOCKED, Severity.NORMAL, 5 * M, 30 * M),
        (TicketCategory.EBIKE_IN_ELEVATOR, Severity.URGENT, 5 * M, 30 * M),
        (TicketCategory.FIRE_ALARM, Severity.URGENT, 1 * M, 30 * M),  # urgent never loosens 1 min
        (TicketCategory.DEVICE_OFFLINE, Severity.NORMAL, 20 * M, 4 * H),
    ],
)
def test_deadlines_defaults(
    category: TicketCategory, severity: Severity, ack_s: float, resolve_s: float
) -> None:
    due = deadlines(DEFAULT_POLICIES[category], severity, T0)
    assert (due.ack_due_at - T0, due.resolve_due_at - T0) == (ack_s, resolve_s)


@pytest.mark.parametrize(
    ("policy", "resolve_s"),
    [
        (CategoryPolicy(resolve_class=ResolveClass.ORDINARY), 30 * M),
        (CategoryPolicy(resolve_class=ResolveClass.COMPLEX), 4 * H),
        (CategoryPolicy(resolve_class=ResolveClass.MAJOR), 24 * H),
        (CategoryPolicy(resolve_class=ResolveClass.MAJOR, resolve_within_s=2 * H), 2 * H),
    ],
)
def test_deadlines_resolve_class_and_override(policy: CategoryPolicy, resolve_s: float) -> None:
    assert deadlines(policy, Severity.NORMAL, T0).resolve_due_at == T0 + resolve_s


PARKING = DEFAULT_POLICIES[TicketCategory.ILLEGAL_PARKING]  # ack 20 min, resolve 30 min


def facts(
    *,
    tier: Tier = Tier.PROPERTY_SERVICE,
    acked: float | None = None,
    resolved: float | None = None,
    breaches: frozenset[Breach] = frozenset(),
) -> SlaFacts:
    return SlaFacts(
        ticket_id=1,
        category=TicketCategory.ILLEGAL_PARKING,
        tier=tier,
        ack_due_at=T0 + 20 * M,
        resolve_due_at=T0 + 30 * M,
        acknowledged_at=acked,
        resolved_at=resolved,
        breaches=breaches,
    )


B = Breach
L1, L2, L3 = Tier.PROPERTY_SERVICE, Tier.PROPERTY_MANAGEMENT, Tier.GOVERNMENT

ESCALATION_TABLE = [
    # (case, facts, now, expected [(breach, from, to)])
    ("before any deadline", facts(), T0 + 19 * M, []),
    ("exactly at ack deadline", facts(), T0 + 20 * M, [(B.ACK, L1, L2)]),
    ("acked in time, before resolve deadline", facts(acked=T0 + 5 * M), T0 + 29 * M, []),
    ("acked late still breached", facts(acked=T0 + 21 * M), T0 + 25 * M, [(B.ACK, L1, L2)]),
    ("acked in time, resolve missed", facts(acked=T0 + 5 * M), T0 + 31 * M, [(B.RESOLVE, L1, L2)]),
    (
        "nothing done, resolve missed: two tiers",
        facts(),
        T0 + 31 * M,
        [(B.ACK, L1, L2), (B.RESOLVE, L2, L3)],
    ),
    ("ack breach already recorded", facts(tier=L2, breaches=frozenset({B.ACK})), T0 + 25 * M, []),
    (
        "resolve breach after recorded ack breach",
        facts(tier=L2, breaches=frozenset({B.ACK})),
        T0 + 30 * M,
        [(B.RESOLVE, L2, L3)],
    ),
    (
        "second resolve window missed",
        facts(tier=L2, acked=T0, breaches=frozenset({B.RESOLVE})),
        T0 + 60 * M,
        [(B.RESOLVE_2, L2, L3)],
    ),
    (
        "at L3 a further breach is recorded but stays L3",
        facts(tier=L3, breaches=frozenset({B.ACK, B.RESOLVE})),
        T0 + 61 * M,
        [(B.RESOLVE_2, L3, L3)],
    ),
    ("resolved in time", facts(acked=T0, resolved=T0 + 29 * M), T0 + 10 * H, []),
    (
        "resolved late: breach still counts (the loop ran late)",
        facts(acked=T0, resolved=T0 + 40 * M),
        T0 + 41 * M,
        [(B.RESOLVE, L1, L2)],
    ),
]


@pytest.mark.parametrize(
    ("facts_", "now", "expected"),
    [pytest.param(f, n, e, id=case) for case, f, n, e in ESCALATION_TABLE],
)
def test_due_escalations_table(
    facts_: SlaFacts, now: float, expected: list[tuple[Breach, Tier, Tier]]
) -> None:
    got = due_escalations(facts_, PARKING, now)
    assert [(e.breach, e.from_tier, e.to_tier) for e in got] == expected


def test_due_escalations_l3_records_the_enforcement_handoff() -> None:
    got = due_escalations(facts(tier=L2, breaches=frozenset({B.ACK})), PARKING, T0 + 31 * M)
    assert got[0].handoff_to == "traffic police (交警)"
    got = due_escalations(facts(), PARKING, T0 + 21 * M)
    assert got[0].handoff_to is None  # L2 is in-house: no hand-off


def test_due_escalations_fake_clock_walk_escalates_each_breach_once() -> None:
    """Drive the clock minute by minute, recording breaches as a store would."""
    recorded: set[Breach] = set()
    tier = L1
    timeline: list[tuple[float, Breach, Tier]] = []
    for minute in range(120):
        now = T0 + minute * M
        current = facts(tier=tier, acked=None, breaches=frozenset(recorded))
        for esc in due_escalations(current, PARKING, now):
            recorded.add(esc.breach)
            tier = esc.to_tier
            timeline.append((now - T0, esc.breach, esc.to_tier))
    assert timeline == [(20 * M, B.ACK, L2), (30 * M, B.RESOLVE, L3), (60 * M, B.RESOLVE_2, L3)]
