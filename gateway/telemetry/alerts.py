"""Rule transitions → `Alert`s, the one shape tickets are made from. Pure.

The condition is the alert's zone, so the store's one-open-ticket-per (site, device,
category, zone) key is one ticket per (device, condition). The event id is stable from a
condition's start to its end, so the end clears the ticket the start opened; msg ids are
derived from it, so a replica or a replay computing the same transition is a duplicate.
"""

from __future__ import annotations

from contract import EventPhase
from gateway.alerts import Alert
from gateway.telemetry.rules import Transition


def transition_alert(site_id: str, device_id: str, sensor_kind: str, t: Transition) -> Alert:
    """The alert that opens (active) or clears a condition's ticket."""
    event_id = f"tel-{device_id}-{t.condition}-{t.started_at:.3f}"
    phase = EventPhase.START if t.active else EventPhase.END
    detail: dict[str, object] = {"sensor_kind": sensor_kind, "reasons": [t.reason]}
    if t.port is not None:
        detail["port"] = t.port
    if t.cut_off:
        detail["cut_off"] = "requested"
    return Alert(
        msg_id=f"{event_id}-{phase.value}",
        site_id=site_id,
        device_id=device_id,
        category=t.category,
        zone_id=t.condition,
        severity=t.severity,
        event_id=event_id,
        phase=phase,
        seq=0 if t.active else 1,
        ts=t.ts,
        detail=detail,
    )
