"""Table-driven SLA clock and 721-escalation tests with a fake clock (plain numbers)."""

from __future__ import annotations

import pytest

from contract import Severity
from gateway.sla import (
    DEFAULT_POLICIES,
    Breach,
    CategoryPolicy,
    ResolveClass,
    SlaClock,
    SlaFacts,
    TicketCategory,
    Tier,
    deadlines,
    due_escalations,
    restart_clock,
    start_clock,
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
        cycle=0,
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


# ---------------------------------------------------------------- reopening: a new SLA cycle

R = T0 + 5 * H  # when the ticket is reopened


@pytest.mark.parametrize(
    ("category", "severity", "clock", "expected"),
    [
        # (cycle, tier, ack due, resolve due) after a reopen at R
        pytest.param(
            TicketCategory.ILLEGAL_PARKING,
            Severity.NORMAL,
            SlaClock(0, L1, T0 + 20 * M, T0 + 30 * M),
            (1, L1, R + 20 * M, R + 30 * M),
            id="parking, never escalated",
        ),
        pytest.param(
            TicketCategory.ILLEGAL_PARKING,
            Severity.URGENT,
            SlaClock(0, L2, T0 + 5 * M, T0 + 30 * M),
            (1, L2, R + 5 * M, R + 30 * M),
            id="urgent keeps the 5 min window; L2 kept",
        ),
        pytest.param(
            TicketCategory.FIRE_ALARM,
            Severity.URGENT,
            SlaClock(2, L3, T0 + 1 * M, T0 + 30 * M),
            (3, L3, R + 1 * M, R + 30 * M),
            id="fire alarm, third reopen, L3 kept",
        ),
        pytest.param(
            TicketCategory.DEVICE_OFFLINE,
            Severity.NORMAL,
            SlaClock(0, L1, T0 + 20 * M, T0 + 4 * H),
            (1, L1, R + 20 * M, R + 4 * H),
            id="device offline: complex job, 4 h again",
        ),
    ],
)
def test_restart_clock_counts_fresh_windows_from_the_reopen(
    category: TicketCategory,
    severity: Severity,
    clock: SlaClock,
    expected: tuple[int, Tier, float, float],
) -> None:
    got = restart_clock(clock, DEFAULT_POLICIES[category], severity, R)
    assert (got.cycle, got.tier, got.ack_due_at, got.resolve_due_at) == expected


def test_restart_clock_uses_the_configured_policy() -> None:
    slow = CategoryPolicy(ack_within_s=30 * M, resolve_class=ResolveClass.MAJOR)
    got = restart_clock(start_clock(slow, Severity.NORMAL, T0), slow, Severity.NORMAL, R)
    assert (got.ack_due_at, got.resolve_due_at) == (R + 30 * M, R + 24 * H)
    assert start_clock(slow, Severity.NORMAL, T0) == SlaClock(0, L1, T0 + 30 * M, T0 + 24 * H)


def reopened_facts(tier: Tier, *, acked: float | None = None) -> SlaFacts:
    """Parking reopened at R into cycle 1, with no breach recorded in that cycle yet."""
    clock = restart_clock(SlaClock(0, tier, T0 + 20 * M, T0 + 30 * M), PARKING, Severity.NORMAL, R)
    return SlaFacts(
        ticket_id=1,
        category=TicketCategory.ILLEGAL_PARKING,
        cycle=clock.cycle,
        tier=clock.tier,
        ack_due_at=clock.ack_due_at,
        resolve_due_at=clock.resolve_due_at,
        acknowledged_at=acked,
        resolved_at=None,
        breaches=frozenset(),
    )


REOPEN_TABLE = [
    # (case, facts, now, expected [(cycle, breach, from, to, hand-off)])
    ("at the reopen: the old deadlines have passed", reopened_facts(L1), R, []),
    ("just before the new ack deadline", reopened_facts(L2), R + 20 * M - 1, []),
    (
        "new ack deadline from L1",
        reopened_facts(L1),
        R + 20 * M,
        [(1, B.ACK, L1, L2, None)],
    ),
    (
        "new ack deadline from a kept L2: the L3 hand-off",
        reopened_facts(L2),
        R + 20 * M,
        [(1, B.ACK, L2, L3, "traffic police (交警)")],
    ),
    (
        "kept L3: recorded again, no second hand-off",
        reopened_facts(L3),
        R + 31 * M,
        [(1, B.ACK, L3, L3, None), (1, B.RESOLVE, L3, L3, None)],
    ),
    (
        "acknowledged in time in the new cycle",
        reopened_facts(L2, acked=R + 3 * M),
        R + 29 * M,
        [],
    ),
]


@pytest.mark.parametrize(
    ("facts_", "now", "expected"),
    [pytest.param(f, n, e, id=case) for case, f, n, e in REOPEN_TABLE],
)
def test_due_escalations_after_reopen_table(
    facts_: SlaFacts, now: float, expected: list[tuple[int, Breach, Tier, Tier, str | None]]
) -> None:
    got = due_escalations(facts_, PARKING, now)
    assert [(e.cycle, e.breach, e.from_tier, e.to_tier, e.handoff_to) for e in got] == expected


def test_fake_clock_walk_across_a_reopen_escalates_each_breach_once_per_cycle() -> None:
    """Open at T0, acknowledged late at +25 min and resolved at +28 min, reopened at +60 min:
    the ack breach of cycle 0 happens once; cycle 1 runs on its own deadlines from the
    reopen, from the tier reached (L2), each breach once."""
    clock = start_clock(PARKING, Severity.NORMAL, T0)
    acked: float | None = None
    resolved: float | None = None
    recorded: set[tuple[int, Breach]] = set()
    timeline: list[tuple[float, int, Breach, Tier]] = []
    for minute in range(180):
        now = T0 + minute * M
        if minute == 25:
            acked = now
        if minute == 28:
            resolved = now
        if minute == 60:
            clock = restart_clock(clock, PARKING, Severity.NORMAL, now)
            acked = resolved = None
        current = SlaFacts(
            ticket_id=1,
            category=TicketCategory.ILLEGAL_PARKING,
            cycle=clock.cycle,
            tier=clock.tier,
            ack_due_at=clock.ack_due_at,
            resolve_due_at=clock.resolve_due_at,
            acknowledged_at=acked,
            resolved_at=resolved,
            breaches=frozenset(b for c, b in recorded if c == clock.cycle),
        )
        if resolved is not None:
            continue  # the store's loop only looks at open tickets
        for esc in due_escalations(current, PARKING, now):
            recorded.add((esc.cycle, esc.breach))
            clock = SlaClock(clock.cycle, esc.to_tier, clock.ack_due_at, clock.resolve_due_at)
            timeline.append((now - T0, esc.cycle, esc.breach, esc.to_tier))
    assert timeline == [
        (20 * M, 0, B.ACK, L2),
        (80 * M, 1, B.ACK, L3),
        (90 * M, 1, B.RESOLVE, L3),
        (120 * M, 1, B.RESOLVE_2, L3),
    ]
