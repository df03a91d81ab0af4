"""The embedded store's append, handed to the receiver process (`mqtt.telemetry_processes`).

With two processes the gateway process is the bottleneck (about twice the receiver's CPU a
message, docs/sensors.md "Two cores"), and the append of a batch's points is pure I/O that
needs none of the state it keeps: no rules, no claims. So `gateway.receiver_ingest` sets
`HANDOVER` around each batch it applies; `TelemetryService.store_points` then puts the
batch's committed points into it as a `StoreWork` instead of writing them, and the reply
carries the work to the receiver process, which appends it (`SqliteTelemetryStore.
write_messages`, each message once, a redelivery rechecked) before it publishes the Acks and
acknowledges the batch to the broker. The order of the guarantee is unchanged: commit, then
the points stored, then the acknowledgement. A receiver killed between the reply and its
append leaves the batch unacknowledged: it comes again, the claims call it a duplicate, and
the recheck stores what is missing.

What stays in the gateway process: ESPHome states (their repeat check reads the series'
newest point, which that process caches), and the InfluxDB writer, which is fed the points
of the messages the commit claimed for the first time (a redelivery's were handed to it
when it was claimed).
"""

from __future__ import annotations

from contextvars import ContextVar

import msgspec

from gateway.telemetry.points import Point


class StoreWork(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """One batch's append: each message's key and points, and the keys to recheck (the
    claims found them processed already: redeliveries)."""

    now: float
    messages: list[tuple[tuple[str, str, str], list[Point]]]
    recheck: list[tuple[str, str, str]]

    @property
    def points(self) -> int:
        """Points handed over."""
        return sum(len(points) for _, points in self.messages)


HANDOVER: ContextVar[list[StoreWork] | None] = ContextVar("telemetry_handover", default=None)
"""Set (to an empty list) by the caller that will append the points elsewhere; unset, the
points are written where they are committed."""
