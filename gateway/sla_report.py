"""SLA performance as a pure function of ticket facts: response and resolution time
distributions, the share within the field's targets, and breach rates per grid and category.

The targets are the figures property-service operators quote (not this gateway's configured
clocks, which may be stricter): respond within 20 min, emergencies within 15 min; solve an
ordinary job within 30 min, a complex one within 4 h (a major one within a day).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gateway.models import SlaFact
from gateway.sla import HOUR, MINUTE, CategoryPolicy, ResolveClass, TicketCategory

RESPOND_TARGET_S = 20 * MINUTE
RESPOND_EMERGENCY_TARGET_S = 15 * MINUTE
RESOLVE_TARGET_S: dict[ResolveClass, float] = {
    ResolveClass.ORDINARY: 30 * MINUTE,
    ResolveClass.COMPLEX: 4 * HOUR,
    ResolveClass.MAJOR: 24 * HOUR,
}
EMERGENCY_CATEGORIES = frozenset({TicketCategory.FIRE_ALARM.value})
"""Categories that are emergencies whatever their severity (besides `urgent` severity)."""

RESPONSE_BINS_S: tuple[float, ...] = (
    5 * MINUTE,
    10 * MINUTE,
    15 * MINUTE,
    20 * MINUTE,
    30 * MINUTE,
    HOUR,
)
"""Upper edges of the response-time bins; one more bin holds everything slower."""
RESOLUTION_BINS_S: tuple[float, ...] = (
    15 * MINUTE,
    30 * MINUTE,
    HOUR,
    2 * HOUR,
    4 * HOUR,
    8 * HOUR,
    24 * HOUR,
)


@dataclass(frozen=True)
class Rate:
    """`hits` out of `total` (a breach count, or jobs within target)."""

    hits: int
    total: int

    @property
    def percent(self) -> float | None:
        """hits / total in percent, None when there is nothing to divide."""
        return None if self.total == 0 else 100.0 * self.hits / self.total


@dataclass(frozen=True)
class SlaReport:
    """What the SLA page shows."""

    tickets: int
    response_bins_s: tuple[float, ...]
    response_counts: list[int]
    resolution_bins_s: tuple[float, ...]
    resolution_counts: list[int]
    responded_within_target: Rate
    resolved_within_target: Rate
    awaiting_response: int
    breaches_by_grid: dict[str, Rate] = field(default_factory=dict)
    breaches_by_category: dict[str, Rate] = field(default_factory=dict)


def is_emergency(fact: SlaFact) -> bool:
    """Emergencies have the shorter response target."""
    return fact.severity == "urgent" or fact.category in EMERGENCY_CATEGORIES


def respond_target_s(fact: SlaFact) -> float:
    """The field's response target for this ticket."""
    return RESPOND_EMERGENCY_TARGET_S if is_emergency(fact) else RESPOND_TARGET_S


def resolve_target_s(fact: SlaFact, policies: Mapping[TicketCategory, CategoryPolicy]) -> float:
    """The field's resolution target for this ticket's job size (ordinary when unknown)."""
    try:
        policy = policies[TicketCategory(fact.category)]
    except (KeyError, ValueError):
        return RESOLVE_TARGET_S[ResolveClass.ORDINARY]
    return RESOLVE_TARGET_S[policy.resolve_class]


def histogram(values: Iterable[float], edges: Sequence[float]) -> list[int]:
    """Counts per bin: value <= edges[i] falls in bin i (the first that fits); the last
    bin (index len(edges)) holds values above every edge."""
    counts = [0] * (len(edges) + 1)
    for value in values:
        index = next((i for i, edge in enumerate(edges) if value <= edge), len(edges))
        counts[index] += 1
    return counts


def _rates(facts: Iterable[SlaFact], key: str) -> dict[str, Rate]:
    hits: dict[str, int] = {}
    totals: dict[str, int] = {}
    for fact in facts:
        name = getattr(fact, key) or ""
        totals[name] = totals.get(name, 0) + 1
        hits[name] = hits.get(name, 0) + (1 if fact.breaches > 0 else 0)
    return {name: Rate(hits[name], totals[name]) for name in sorted(totals)}


def build_report(
    facts: Sequence[SlaFact], policies: Mapping[TicketCategory, CategoryPolicy]
) -> SlaReport:
    """The report over `facts`. A ticket resolved without an acknowledgement responded when
    it was resolved; one with neither is awaiting a response (not in the distribution)."""
    responses: list[float] = []
    responded_ok = 0
    resolutions: list[float] = []
    resolved_ok = 0
    awaiting = 0
    for fact in facts:
        first = fact.acknowledged_at if fact.acknowledged_at is not None else fact.resolved_at
        if first is None:
            awaiting += 1
        else:
            took = max(0.0, first - fact.created_at)
            responses.append(took)
            responded_ok += took <= respond_target_s(fact)
        if fact.resolved_at is not None:
            took = max(0.0, fact.resolved_at - fact.created_at)
            resolutions.append(took)
            resolved_ok += took <= resolve_target_s(fact, policies)
    return SlaReport(
        tickets=len(facts),
        response_bins_s=RESPONSE_BINS_S,
        response_counts=histogram(responses, RESPONSE_BINS_S),
        resolution_bins_s=RESOLUTION_BINS_S,
        resolution_counts=histogram(resolutions, RESOLUTION_BINS_S),
        responded_within_target=Rate(responded_ok, len(responses)),
        resolved_within_target=Rate(resolved_ok, len(resolutions)),
        awaiting_response=awaiting,
        breaches_by_grid=_rates(facts, "grid_id"),
        breaches_by_category=_rates(facts, "category"),
    )
