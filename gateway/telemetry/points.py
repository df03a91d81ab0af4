"""The one small interface every telemetry store implements, and the point it stores.

Two implementations: `gateway.telemetry.sqlite_store.SqliteTelemetryStore` (always there;
the console's charts and the rules' history read it) and
`gateway.telemetry.influx.InfluxWriter` (the InfluxDB v2 write API, when configured).
`gateway.telemetry.sink.TelemetrySink` feeds both from its own thread, so a store never
runs on the ingest path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Point:
    """One stored reading. `series` is the metric with its port (``port2_temperature``)."""

    site_id: str
    device_id: str
    series: str
    value: float
    ts: float


class PointWriter(Protocol):
    """Where the sink's batches go. `write` may block (it runs on the sink's thread) and
    raises only for a bug: a store that is away buffers or drops, and counts."""

    def write(self, points: Sequence[Point]) -> None:
        """Store a batch."""

    def close(self) -> None:
        """Flush what can be flushed and release the store."""
