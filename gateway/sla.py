"""SLA clocks and the "721" escalation ladder, as pure functions of a ticket's facts and `now`.

Defaults are the figures quoted by property-service operators:

- acknowledge within 20 min; urgent items within 5 min; a fire alarm within 1 min;
- resolve ordinary issues within 30 min, complex ones within 4 h, major ones (a written plan is
  the deliverable) within 1 day.

A breach escalates one tier: L1 property service (the grid's duty butler) → L2 property
management (the grid supervisor) → L3 government enforcement (an external department; the
hand-off is recorded). The breaches, in order, are:

1. ``ack``: not acknowledged by ``ack_due_at``;
2. ``resolve``: not resolved by ``resolve_due_at``;
3. ``resolve_2``: still not resolved one more resolve window later.

Each breach moves the ticket one tier up from where it is, capped at 3.

**Reopening starts a new SLA cycle** (`restart_clock`): a ticket resolved and then reopened
(by a person, or by a new event within the cool-down after an auto-resolution) is a job to do
again, so it gets fresh acknowledge and resolve windows from the reopen time by its category
policy, must be acknowledged again, and each breach can happen again, once, in the new cycle.
The tier reached so far is kept, not reset: escalation is never undone by a reopen (see
docs/gateway.md for why).

This module never touches the database: the store records each breach under a unique
(ticket, cycle, breach) key, so replicas that compute the same escalation at the same time
commit it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from pydantic import BaseModel, ConfigDict, Field

from contract import EventCategory, Severity

MINUTE = 60.0
HOUR = 3600.0


class TicketCategory(StrEnum):
    """Kinds of ticket: every detection category plus the sensor and maintenance ones."""

    ILLEGAL_PARKING = EventCategory.ILLEGAL_PARKING.value
    FIRE_LANE_BLOCKED = EventCategory.FIRE_LANE_BLOCKED.value
    EBIKE_IN_ELEVATOR = EventCategory.EBIKE_IN_ELEVATOR.value
    LITTER = EventCategory.LITTER.value
    ZOMBIE_VEHICLE = EventCategory.ZOMBIE_VEHICLE.value
    THROWN_OBJECT = EventCategory.THROWN_OBJECT.value
    FIRE_ALARM = "fire_alarm"
    DEVICE_OFFLINE = "device_offline"
    CHARGING_HAZARD = "charging_hazard"
    SENSOR_FAULT = "sensor_fault"
    INDOOR_CHARGING = "indoor_charging"
    # Reported by residents (gateway.residents) and found on patrol rounds (gateway.rounds).
    FACILITY_REPAIR = "facility_repair"
    NOISE = "noise"
    OTHER_REPORT = "other_report"
    INSPECTION_FAILED = "inspection_failed"
    ROUND_MISSED = "round_missed"


class ResolveClass(StrEnum):
    """How big the job is; sets the default resolve window."""

    ORDINARY = "ordinary"
    COMPLEX = "complex"
    MAJOR = "major"


RESOLVE_WINDOW_S: dict[ResolveClass, float] = {
    ResolveClass.ORDINARY: 30 * MINUTE,
    ResolveClass.COMPLEX: 4 * HOUR,
    ResolveClass.MAJOR: 24 * HOUR,
}
ACK_DEFAULT_S = 20 * MINUTE
ACK_URGENT_S = 5 * MINUTE
ACK_FIRE_S = 1 * MINUTE


class Tier(IntEnum):
    """The "721" tiers: who owns the ticket now."""

    PROPERTY_SERVICE = 1
    PROPERTY_MANAGEMENT = 2
    GOVERNMENT = 3


class Breach(StrEnum):
    """Which deadline was missed; each happens at most once per SLA cycle of a ticket."""

    ACK = "ack"
    RESOLVE = "resolve"
    RESOLVE_2 = "resolve_2"


class CategoryPolicy(BaseModel):
    """SLA and handling policy of one ticket category."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ack_within_s: float = Field(default=ACK_DEFAULT_S, gt=0, description="Acknowledge window.")
    resolve_class: ResolveClass = Field(default=ResolveClass.ORDINARY, description="Job size.")
    resolve_within_s: float | None = Field(
        default=None, gt=0, description="Resolve window; None takes the resolve class's default."
    )
    auto_resolve_on_end: bool = Field(
        default=False,
        description="An edge `end` resolves the ticket (True) or only marks it cleared (False).",
    )
    field_work: bool = Field(
        default=True, description="Resolving needs a photo from the site (field categories)."
    )
    enforcement_department: str = Field(
        default="community enforcement office (综合执法)",
        description="Who receives an L3 hand-off.",
    )

    @property
    def resolve_window_s(self) -> float:
        """The effective resolve window."""
        if self.resolve_within_s is not None:
            return self.resolve_within_s
        return RESOLVE_WINDOW_S[self.resolve_class]


DEFAULT_POLICIES: dict[TicketCategory, CategoryPolicy] = {
    # A parked car that drives off needs nobody: auto-resolve on `end`.
    TicketCategory.ILLEGAL_PARKING: CategoryPolicy(
        auto_resolve_on_end=True, enforcement_department="traffic police (交警)"
    ),
    # A blocked fire lane is a safety item: someone confirms it is clear.
    TicketCategory.FIRE_LANE_BLOCKED: CategoryPolicy(
        ack_within_s=ACK_URGENT_S, enforcement_department="fire brigade (消防救援)"
    ),
    TicketCategory.EBIKE_IN_ELEVATOR: CategoryPolicy(
        ack_within_s=ACK_URGENT_S,
        auto_resolve_on_end=True,
        enforcement_department="fire brigade (消防救援)",
    ),
    # Litter does not leave by itself even when the camera loses sight of it.
    TicketCategory.LITTER: CategoryPolicy(enforcement_department="urban management (城管)"),
    # A car abandoned for a week is not urgent: tracing the owner takes days (低紧急度).
    TicketCategory.ZOMBIE_VEHICLE: CategoryPolicy(
        resolve_class=ResolveClass.MAJOR,
        auto_resolve_on_end=True,
        enforcement_department="traffic police (交警)",
    ),
    # Something fell from a window: someone may be hurt and it may happen again.
    TicketCategory.THROWN_OBJECT: CategoryPolicy(
        ack_within_s=ACK_URGENT_S, enforcement_department="public security police (公安)"
    ),
    TicketCategory.FIRE_ALARM: CategoryPolicy(
        ack_within_s=ACK_FIRE_S, enforcement_department="fire brigade (消防救援)"
    ),
    TicketCategory.DEVICE_OFFLINE: CategoryPolicy(
        resolve_class=ResolveClass.COMPLEX,
        auto_resolve_on_end=True,
        field_work=False,
        enforcement_department="equipment vendor",
    ),
    # A port over temperature or current: the relay is cut, a butler still checks the
    # battery (a cooled cell can reignite), so the condition clearing does not resolve it.
    TicketCategory.CHARGING_HAZARD: CategoryPolicy(
        ack_within_s=ACK_URGENT_S, enforcement_department="fire brigade (消防救援)"
    ),
    # Low battery, tamper, a stuck or out-of-range sensor: a maintenance job.
    TicketCategory.SENSOR_FAULT: CategoryPolicy(
        resolve_class=ResolveClass.COMPLEX,
        auto_resolve_on_end=True,
        enforcement_department="equipment vendor",
    ),
    # A charger on a household circuit at night (飞线充电): someone has to go and look.
    TicketCategory.INDOOR_CHARGING: CategoryPolicy(
        enforcement_department="fire brigade (消防救援)"
    ),
    # A broken lamp, door or lift button: a repair, often waiting for a part.
    TicketCategory.FACILITY_REPAIR: CategoryPolicy(
        resolve_class=ResolveClass.COMPLEX, enforcement_department="housing authority (住建)"
    ),
    # Noise at night: someone goes and asks; the police if it goes on.
    TicketCategory.NOISE: CategoryPolicy(enforcement_department="public security police (公安)"),
    # Anything else a resident reports: the desk reads it and decides.
    TicketCategory.OTHER_REPORT: CategoryPolicy(
        field_work=False, enforcement_department="sub-district office (街道)"
    ),
    # A fire extinguisher out of pressure, a fire door that does not close (数字消防).
    TicketCategory.INSPECTION_FAILED: CategoryPolicy(
        ack_within_s=ACK_URGENT_S,
        resolve_class=ResolveClass.COMPLEX,
        enforcement_department="fire brigade (消防救援)",
    ),
    # A patrol round or checkpoint nobody walked: the supervisor finds out why.
    TicketCategory.ROUND_MISSED: CategoryPolicy(
        field_work=False, enforcement_department="property company management (物业公司)"
    ),
}


@dataclass(frozen=True)
class Deadlines:
    """When a ticket must be acknowledged and resolved."""

    ack_due_at: float
    resolve_due_at: float


def deadlines(policy: CategoryPolicy, severity: Severity, opened_at: float) -> Deadlines:
    """Deadlines of a ticket opened at `opened_at`; urgent items get at most the urgent window."""
    ack = policy.ack_within_s
    if severity is Severity.URGENT:
        ack = min(ack, ACK_URGENT_S)
    return Deadlines(opened_at + ack, opened_at + policy.resolve_window_s)


@dataclass(frozen=True)
class SlaClock:
    """A ticket's SLA clock: which cycle it is in (0 until the first reopen), the tier it has
    reached, and the cycle's deadlines."""

    cycle: int
    tier: Tier
    ack_due_at: float
    resolve_due_at: float


def start_clock(policy: CategoryPolicy, severity: Severity, opened_at: float) -> SlaClock:
    """The clock of a ticket opened at `opened_at`: cycle 0, property service (L1)."""
    due = deadlines(policy, severity, opened_at)
    return SlaClock(0, Tier.PROPERTY_SERVICE, due.ack_due_at, due.resolve_due_at)


def restart_clock(
    clock: SlaClock, policy: CategoryPolicy, severity: Severity, reopened_at: float
) -> SlaClock:
    """The clock of a ticket reopened at `reopened_at`: the next cycle, with acknowledge and
    resolve windows counted from the reopen by the category policy, at the tier reached so far.

    The previous cycle's deadlines and recorded breaches no longer apply, so a reopened ticket
    neither breaches at once (its old deadlines have passed) nor never (its old breaches are
    recorded). The tier is kept: whoever the ticket had been escalated to still owns it, and a
    breach in the new cycle escalates further from there.
    """
    due = deadlines(policy, severity, reopened_at)
    return SlaClock(clock.cycle + 1, clock.tier, due.ack_due_at, due.resolve_due_at)


@dataclass(frozen=True)
class SlaFacts:
    """What the SLA clock needs to know about one ticket in its current cycle."""

    ticket_id: int
    category: TicketCategory
    cycle: int
    tier: Tier
    ack_due_at: float
    resolve_due_at: float
    acknowledged_at: float | None
    resolved_at: float | None
    breaches: frozenset[Breach]  # recorded in this cycle


@dataclass(frozen=True)
class Escalation:
    """One breach of SLA cycle `cycle` to record, moving the ticket from `from_tier` to
    `to_tier`."""

    ticket_id: int
    cycle: int
    breach: Breach
    due_at: float
    from_tier: Tier
    to_tier: Tier
    handoff_to: str | None


def _breach_times(
    facts: SlaFacts, policy: CategoryPolicy
) -> list[tuple[Breach, float, float | None]]:
    """(breach, deadline, when the obligation was met or None) in ladder order."""
    return [
        (Breach.ACK, facts.ack_due_at, facts.acknowledged_at),
        (Breach.RESOLVE, facts.resolve_due_at, facts.resolved_at),
        (Breach.RESOLVE_2, facts.resolve_due_at + policy.resolve_window_s, facts.resolved_at),
    ]


def due_escalations(facts: SlaFacts, policy: CategoryPolicy, now: float) -> list[Escalation]:
    """Breaches of the current cycle that have happened by `now` and are not yet recorded,
    in ladder order.

    A deadline counts as met when the ticket was acknowledged / resolved at or before it (the
    time it happened, not `now`, decides: a loop that runs late must not escalate a ticket that
    was handled in time).
    """
    out: list[Escalation] = []
    tier = facts.tier
    for breach, due, done_at in _breach_times(facts, policy):
        met = done_at is not None and done_at <= due
        if met or now < due or breach in facts.breaches:
            continue
        to_tier = Tier(min(int(tier) + 1, int(Tier.GOVERNMENT)))
        handoff = (
            policy.enforcement_department
            if to_tier is Tier.GOVERNMENT and tier is not Tier.GOVERNMENT
            else None
        )
        out.append(Escalation(facts.ticket_id, facts.cycle, breach, due, tier, to_tier, handoff))
        tier = to_tier
    return out
