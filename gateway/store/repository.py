"""`Store`: every read and write the gateway makes, each one a short transaction.

`Store` is the one object the rest of the gateway holds; it is assembled from one part per
aggregate, each in its own module:

| part | module | owns |
|---|---|---|
| `TicketStore` | `tickets.py` | ticket lists and detail, people's transitions, photos, snapshots |
| `EscalationStore` | `escalations.py` | recording SLA breaches exactly once |
| `DeviceStore` | `devices.py` | the device registry, heartbeat timeouts, broker credentials |
| `GridStore` | `grids.py` | grids, zones, duty rosters |
| `UserStore` | `users.py` | console users |
| `InboxStore` | `inbox.py` | dead letters, processed message ids, snapshot retention |
| `WebhookStore` | `webhooks.py` | webhooks and the delivery ledger |
| `CommandStore` | `commands.py` | the audit of commands sent to devices through the API |
| `SensorNodeStore` | `sensors.py` | sensor devices' telemetry profiles |
| `ReportStore` | `reports.py` | facts for reports (SLA performance) |
| `RolloutStore` | `rollouts.py` | model artifacts, rollouts, each device's rollout state |
| `ResidentStore` | `residents.py` | resident reports, spent challenges, ratings |
| `RoundStore` | `rounds.py` | patrol scans and the tickets rounds open |
| `FigureStore` | `figures.py` | the ticket facts the figures are computed from |

and the change feed's reads below. They share `StoreBase` (`base.py`): the engine, read and
write transactions, and `ingest`, the transaction around `IngestTx` (`ingest_tx.py`, the
batched write path of MQTT ingest).

Synchronous on purpose (async callers use ``asyncio.to_thread``): SQLite and psycopg are both
fast enough per message, and one code path serves the API threads and the ingest task.

Exactly-once rules are enforced by the database, never by process memory:

- a message id is inserted into ``processed_messages`` in the same transaction as its effect;
  a redelivery (or the same message reaching another replica) fails that insert and is dropped;
- opening a ticket inserts a unique ``active_key``; losing that race means another writer just
  opened it, and the alert merges into theirs;
- an escalation inserts a unique (ticket, SLA cycle, breach) row and moves the tier with a
  conditional ``UPDATE … WHERE tier = :from AND sla_cycle = :cycle``;
- a person's transition is a conditional ``UPDATE … WHERE state = :from``.
"""

from __future__ import annotations

from gateway.models import FeedEntry
from gateway.store import feed
from gateway.store.commands import CommandStore
from gateway.store.devices import DeviceStore
from gateway.store.escalations import EscalationStore
from gateway.store.figures import FigureStore
from gateway.store.grids import GridStore
from gateway.store.inbox import InboxStore
from gateway.store.leases import LeaseStore
from gateway.store.reports import ReportStore
from gateway.store.residents import ResidentStore
from gateway.store.rollouts import RolloutStore
from gateway.store.rounds import RoundStore
from gateway.store.sensors import SensorNodeStore
from gateway.store.tickets import TicketStore
from gateway.store.users import UserStore
from gateway.store.webhooks import WebhookStore


class Store(
    TicketStore,
    EscalationStore,
    DeviceStore,
    GridStore,
    UserStore,
    InboxStore,
    WebhookStore,
    CommandStore,
    SensorNodeStore,
    ReportStore,
    RolloutStore,
    ResidentStore,
    RoundStore,
    FigureStore,
    LeaseStore,
):
    """The gateway database. Build one per process with `Store(url)`; `close()` at exit."""

    def changes_after(self, last_id: int, limit: int = 500) -> list[FeedEntry]:
        """Feed entries with ids above `last_id`, oldest first (see `gateway.store.feed`)."""
        with self._read() as conn:
            return feed.after(conn, last_id, limit)

    def last_change_id(self) -> int:
        """The newest feed id (0 when empty): where a new stream starts."""
        with self._read() as conn:
            return feed.last_id(conn)

    def oldest_change_id(self) -> int | None:
        """The oldest feed id still kept (None when empty)."""
        with self._read() as conn:
            return feed.oldest_id(conn)

    def prune_changes(self, older_than: float) -> int:
        """Forget feed entries older than any console would resume from."""
        with self._tx() as conn:
            return feed.prune(conn, older_than)
