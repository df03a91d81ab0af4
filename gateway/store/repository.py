"""`Store`: every read and write the gateway makes, each one a short transaction.

`Store` is the one object the rest of the gateway holds. It is a small composition: one
shared `Database` (`base.py`: the engine, read and write transactions, `ingest`, the
transaction around `IngestTx` in `ingest_tx.py`, the batched write path of MQTT ingest) and
one attribute per aggregate, each a `Part` built on that same `Database` (one engine, one
pool), named for what it owns and for its module (`tickets` is `TicketStore` in `tickets.py`):

| attribute | class | owns |
|---|---|---|
| `tickets` | `TicketStore` | ticket lists and detail, people's transitions, photos, snapshots |
| `escalations` | `EscalationStore` | recording SLA breaches exactly once |
| `devices` | `DeviceStore` | the device registry, heartbeat timeouts, broker credentials |
| `grids` | `GridStore` | grids, zones, duty rosters |
| `users` | `UserStore` | console users |
| `inbox` | `InboxStore` | dead letters, processed message ids, snapshot retention |
| `webhooks` | `WebhookStore` | webhooks and the delivery ledger |
| `commands` | `CommandStore` | the audit of commands sent to devices through the API |
| `sensors` | `SensorNodeStore` | sensor devices' telemetry profiles |
| `reports` | `ReportStore` | facts for reports (SLA performance) |
| `rollouts` | `RolloutStore` | model artifacts, rollouts, each device's rollout state |
| `residents` | `ResidentStore` | resident reports, spent challenges, ratings |
| `rounds` | `RoundStore` | patrol scans and the tickets rounds open |
| `figures` | `FigureStore` | the ticket facts the figures are computed from |
| `leases` | `LeaseStore` | named leases (which replica runs a singleton loop) |
| `feed` | `FeedStore` (here) | the change feed's reads and pruning (`feed.py`) |

Cross-cutting entry points stay on `Store` itself, delegating to the shared `Database`:
`ingest(work, now)` (one ingest transaction over every table), `ingest_tx(now)`, `close()`,
and `engine` / `is_sqlite` for migrations and tests. A part never calls another part; one
that needs a whole-database transaction calls its own `Database`.

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

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TypeVar

from sqlalchemy import Engine

from gateway.models import FeedEntry
from gateway.store import feed
from gateway.store.base import Database, Part
from gateway.store.commands import CommandStore
from gateway.store.devices import DeviceStore
from gateway.store.escalations import EscalationStore
from gateway.store.figures import FigureStore
from gateway.store.grids import GridStore
from gateway.store.inbox import InboxStore
from gateway.store.ingest_tx import IngestTx
from gateway.store.leases import LeaseStore
from gateway.store.reports import ReportStore
from gateway.store.residents import ResidentStore
from gateway.store.rollouts import RolloutStore
from gateway.store.rounds import RoundStore
from gateway.store.sensors import SensorNodeStore
from gateway.store.tickets import TicketStore
from gateway.store.users import UserStore
from gateway.store.webhooks import WebhookStore

T = TypeVar("T")


class FeedStore(Part):
    """The change feed's reads (see `gateway.store.feed`); writers append in their own tx."""

    def changes_after(self, last_id: int, limit: int = 500) -> list[FeedEntry]:
        """Feed entries with ids above `last_id`, oldest first."""
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


class Store:
    """The gateway database. Build one per process with `Store(url)`; `close()` at exit."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)
        self.tickets = TicketStore(self.db)
        self.escalations = EscalationStore(self.db)
        self.devices = DeviceStore(self.db)
        self.grids = GridStore(self.db)
        self.users = UserStore(self.db)
        self.inbox = InboxStore(self.db)
        self.webhooks = WebhookStore(self.db)
        self.commands = CommandStore(self.db)
        self.sensors = SensorNodeStore(self.db)
        self.reports = ReportStore(self.db)
        self.rollouts = RolloutStore(self.db)
        self.residents = ResidentStore(self.db)
        self.rounds = RoundStore(self.db)
        self.figures = FigureStore(self.db)
        self.leases = LeaseStore(self.db)
        self.feed = FeedStore(self.db)

    @property
    def engine(self) -> Engine:
        """The shared engine (migrations, tests)."""
        return self.db.engine

    @property
    def is_sqlite(self) -> bool:
        return self.db.is_sqlite

    def ingest(self, work: Callable[[IngestTx], T], now: float, attempts: int = 4) -> T:
        """Run `work` in one ingest transaction and commit it (see `Database.ingest`)."""
        return self.db.ingest(work, now, attempts)

    def ingest_tx(self, now: float) -> AbstractContextManager[IngestTx]:
        """One ingest transaction, without the rerun on a unique-key clash."""
        return self.db.ingest_tx(now)

    def close(self, timeout_s: float = 5.0) -> None:
        """Release pooled connections (see `Database.close`)."""
        self.db.close(timeout_s)
