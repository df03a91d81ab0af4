"""The one small interface every telemetry store implements, and the point it stores.

Two implementations: `gateway.telemetry.sqlite_store.SqliteTelemetryStore` (always there;
the console's charts and the rules' history read it) and
`gateway.telemetry.influx.InfluxWriter` (the InfluxDB v2 write API, when configured).
`gateway.telemetry.sink.TelemetrySink` feeds both once the ingest transaction that took
the readings has committed (see its docstring).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol


class Point(NamedTuple):
    """One stored reading. `series` is the metric with its port (``port2_temperature``).

    A tuple on purpose: tens of thousands a second are made, unpacked and passed on, and a
    tuple is the cheapest object to do that with."""

    site_id: str
    device_id: str
    series: str
    value: float
    ts: float


MsgKey = tuple[str, str, str]
"""(site, device, msg_id): what makes a device's message unique."""


class PointWriter(Protocol):
    """Where the sink's batches go. `write` may block (it runs off the event loop) and
    raises only for a bug or a broken disk: a remote store that is away buffers or drops,
    and counts."""

    def write(self, points: Sequence[Point]) -> None:
        """Store a batch."""

    def close(self) -> None:
        """Flush what can be flushed and release the store."""
