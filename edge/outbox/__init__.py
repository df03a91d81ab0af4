"""The durable outbox: events, snapshots and command results wait here until the gateway acks them.

One SQLite file in WAL mode (stdlib `sqlite3`, the only SQLite user on the edge). A row is
committed *before* it is handed to MQTT and deleted only when the gateway's end-to-end `Ack`
names it (`delete_acked`: events and command results by `msg_id`, snapshots by
`snapshot_id`), never on the broker's PUBACK, so a broker outage or restart, a 4G drop,
``kill -9`` or a power cut loses nothing that `put` returned for:

- ``synchronous=FULL`` by default: each commit is fsynced, so a power cut cannot roll back a
  row the caller was told is stored (``NORMAL`` is faster but may lose the last commits on
  power loss; it is an option for nodes on a UPS).
- Rows keep their exact bytes (payload with its `msg_id`), so a replay after a restart re-sends
  identical messages and receivers drop the duplicates by `msg_id`.
- `seq` is ``AUTOINCREMENT``: never reused, so "everything after seq N" stays meaningful
  across deletes and restarts, and replay order is insertion order.
- A row without an ack key (no `msg_id`, no `snapshot_id`) cannot be named by an Ack; the
  publisher deletes it by seq (`delete`) after its PUBACK.

Files written before end-to-end acks existed lack the `snapshot_id` column; opening one adds it
in place (filled from the snapshot rows' topics) with its index, so queued rows survive the
upgrade.

Bound and drop policy: the outbox holds at most `max_rows` rows and `max_bytes` payload bytes.
When a `put` goes over either bound, whole groups (a snapshot and the event that references it
go together) are dropped oldest-first from the lowest priority present: every ``low`` group
before any ``normal`` group. ``urgent`` rows are never dropped, even if that leaves the outbox
over its bound (a disk-full error is then the honest failure). Every dropped row is counted in
a persistent counter that heartbeats report.

Group commit: puts from several threads (the camera workers) that arrive while a commit is
running share the next transaction and its fsync; each `put` still returns only after the
commit holding its rows (`group_commit`). One thread putting alone gets one commit per put.

The same file keeps the command ledger (`claim_command` / `complete_command`): which command
ids were seen and answered, so a QoS 1 redelivery or a restart never executes a command twice.

Modules: `items` (what goes in and comes out), `schema` (tables, opening, upgrades),
`group_commit` (batching concurrent puts), `store` (`Outbox`), `ledger` (the command ledger).
"""

from edge.outbox.items import (
    CommandClaim,
    CommitStats,
    OutboxError,
    OutboxItem,
    OutboxStats,
    Priority,
    StoredItem,
)
from edge.outbox.store import Outbox

__all__ = [
    "CommandClaim",
    "CommitStats",
    "Outbox",
    "OutboxError",
    "OutboxItem",
    "OutboxStats",
    "Priority",
    "StoredItem",
]
