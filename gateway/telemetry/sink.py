"""Where readings go once the transaction that took them has committed.

Ordering is the point of this module. The telemetry ingest (`gateway.telemetry.ingest`)
first commits a batch's message-id claims and alerts in the gateway database, and only then
hands the readings here; the MQTT edge acknowledges the messages to the broker after that.
So:

- a batch whose transaction rolled back stores no point (it is retried, or dead-lettered);
- a gateway killed between the commit and the point write loses nothing: the broker
  redelivers the unacknowledged messages, the database calls them duplicates, and their
  points are written now — the embedded store records each message's (site, device,
  msg_id) with its points in one transaction, so a message is stored exactly once however
  often it comes (`SqliteTelemetryStore.write_messages`, `recheck`).

The embedded store is written on the caller's thread (a worker thread of the telemetry
session, never the event session's), in one transaction per ingest batch: when it falls
behind, the telemetry session's messages wait at the broker, not events. The InfluxDB writer
only queues (bounded, drops counted) and sends on its own thread.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence

from gateway.telemetry.influx import InfluxWriter
from gateway.telemetry.points import MsgKey, Point
from gateway.telemetry.sqlite_store import SqliteTelemetryStore

log = logging.getLogger(__name__)


class TelemetrySink:
    """The embedded store, and the InfluxDB writer when one is configured."""

    def __init__(self, embedded: SqliteTelemetryStore, remote: InfluxWriter | None = None) -> None:
        self.embedded = embedded
        self.remote = remote

    def store(
        self,
        messages: Sequence[tuple[MsgKey | None, Sequence[Point]]],
        *,
        recheck: Collection[MsgKey] = (),
        now: float = 0.0,
        states: Sequence[tuple[Point, float]] = (),
    ) -> int:
        """Write committed messages' points (each message once); points written.

        Raises what the embedded store raises (a full or broken disk): the caller must then
        not acknowledge the messages, so they come again."""
        written = self.embedded.write_messages(messages, recheck=recheck, now=now, states=states)
        if written and self.remote is not None:
            self.remote.write(written)
        return len(written)

    def close(self) -> None:
        """Send what InfluxDB has buffered (one attempt) and close both stores."""
        if self.remote is not None:
            self.remote.close()
        self.embedded.close()
