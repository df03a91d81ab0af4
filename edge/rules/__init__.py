"""Zone rules: pure decisions over tracks and zones with `now` injected.

Each rule looks at the tracks and their zone memberships and says, per track, whether its
condition holds and since when (`Condition`). `EventLifecycle` turns those conditions into
start → update (rate-limited) → end transitions under one stable event id. Neither does I/O;
the pipeline renders snapshots and builds the contract's DetectionEvent.
"""

from edge.rules.base import Condition, RuleContext, ZoneRule, make_rule
from edge.rules.lifecycle import EventLifecycle, Transition

__all__ = ["Condition", "EventLifecycle", "RuleContext", "Transition", "ZoneRule", "make_rule"]
