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

The same file keeps the command ledger (`claim_command` / `complete_command`): which command
ids were seen and answered, so a QoS 1 redelivery or a restart never executes a command twice.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Literal

from contract import Severity

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    grp INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    kind TEXT NOT NULL,
    msg_id TEXT,
    created_at REAL NOT NULL,
    snapshot_id TEXT
);
CREATE INDEX IF NOT EXISTS outbox_drop_order ON outbox (priority, seq);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS commands (
    command_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS commands_age ON commands (received_at);
"""

# After the upgrade, so an old file has the column before its index is created.
_ACK_INDEXES = """
CREATE INDEX IF NOT EXISTS outbox_msg_id ON outbox (msg_id) WHERE msg_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_snapshot_id ON outbox (snapshot_id)
    WHERE snapshot_id IS NOT NULL;
"""


_COLUMNS = "seq, topic, payload, qos, retain, kind, msg_id, snapshot_id"


def _stored(r: tuple[object, ...]) -> StoredItem:
    return StoredItem(
        seq=int(str(r[0])),
        topic=str(r[1]),
        payload=bytes(r[2]) if isinstance(r[2], bytes | bytearray | memoryview) else b"",
        qos=int(str(r[3])),
        retain=bool(r[4]),
        kind=str(r[5]),
        msg_id=None if r[6] is None else str(r[6]),
        snapshot_id=None if r[7] is None else str(r[7]),
    )


def _upgrade(db: sqlite3.Connection) -> None:
    """Bring a file from before end-to-end acks up to date, in place (idempotent)."""
    columns = {str(row[1]) for row in db.execute("PRAGMA table_info(outbox)")}
    if "snapshot_id" in columns:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("ALTER TABLE outbox ADD COLUMN snapshot_id TEXT")
        # A snapshot's topic ends in its id: guanjia/v1/{site}/{device}/snapshot/{id}.
        snapshots = db.execute("SELECT seq, topic FROM outbox WHERE kind = 'snapshot'").fetchall()
        for seq, topic in snapshots:
            db.execute(
                "UPDATE outbox SET snapshot_id = ? WHERE seq = ?",
                (str(topic).rsplit("/", 1)[-1], seq),
            )
        db.execute("COMMIT")
    except sqlite3.Error:
        db.execute("ROLLBACK")
        raise


class Priority(IntEnum):
    """Drop order under pressure: lowest value goes first; URGENT never goes."""

    LOW = 0
    NORMAL = 1
    URGENT = 2

    @classmethod
    def of(cls, severity: Severity) -> Priority:
        """The priority of an event's severity."""
        return {Severity.LOW: cls.LOW, Severity.NORMAL: cls.NORMAL, Severity.URGENT: cls.URGENT}[
            severity
        ]


class CommandClaim(StrEnum):
    """What the ledger knows about a command id."""

    NEW = "new"
    """Never seen: it is now recorded as started; execute it."""
    ANSWERED = "answered"
    """Executed and answered already: do nothing."""
    INTERRUPTED = "interrupted"
    """Started before a crash but never answered: do not re-run it; answer that it was cut off."""


@dataclass(frozen=True)
class OutboxItem:
    """One message to publish: exact bytes, where, and how urgent."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    priority: Priority
    kind: Literal["event", "snapshot", "command_result", "other"]
    msg_id: str | None = None
    snapshot_id: str | None = None
    """The key a gateway Ack names a snapshot by (snapshots carry no msg_id)."""


@dataclass(frozen=True)
class StoredItem:
    """An item as stored, with its position in the replay order."""

    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    kind: str
    msg_id: str | None
    snapshot_id: str | None = None

    @property
    def ackable(self) -> bool:
        """True when a gateway Ack can name this row (else it goes on its PUBACK)."""
        return self.msg_id is not None or self.snapshot_id is not None


@dataclass(frozen=True)
class OutboxStats:
    """Depth and drop counter, for heartbeats."""

    depth: int
    bytes: int
    dropped: int


class OutboxError(RuntimeError):
    """The outbox file cannot be opened or written."""


class Outbox:
    """A thread-safe durable FIFO of publishable messages with a bounded drop policy.

    One connection guarded by a lock: the capture threads put, the publisher peeks and acks.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_rows: int = 100_000,
        max_bytes: int = 512 * 1024 * 1024,
        synchronous: Literal["full", "normal"] = "full",
        command_ledger_size: int = 10_000,
    ) -> None:
        if max_rows < 1 or max_bytes < 1:
            raise ValueError("outbox bounds must be positive")
        self.path = path
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self._ledger_size = command_ledger_size
        self._synchronous = synchronous
        self._lock = threading.Lock()
        db: sqlite3.Connection | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves, so a put is
            # exactly one transaction and one fsync.
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OutboxError(f"{path}: SQLite refused WAL mode (got {mode!r})")
            db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            db.executescript(_SCHEMA)
            _upgrade(db)
            db.executescript(_ACK_INDEXES)
            rows, size = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
            ).fetchone()
            self._grp = int(db.execute("SELECT COALESCE(MAX(grp), 0) FROM outbox").fetchone()[0])
        except (sqlite3.Error, OSError, OutboxError) as exc:
            if db is not None:
                db.close()
            raise OutboxError(f"cannot open outbox {path}: {exc}") from exc
        self._db = db
        self._rows = int(rows)
        self._bytes = int(size)
        self._dropped = self._counter("dropped")

    # -- writing -------------------------------------------------------------------------

    def put(self, items: Sequence[OutboxItem]) -> list[int]:
        """Store `items` as one group in one transaction, in order; return their seqs.

        When this returns, the rows are on disk (fsynced with ``synchronous=full``). A group is
        dropped as a whole under pressure, so put a snapshot and its event together.
        """
        if not items:
            return []
        now = time.time()
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._grp += 1
                seqs = [self._insert(item, now) for item in items]
                added_rows = len(items)
                added_bytes = sum(len(item.payload) for item in items)
                dropped_rows, dropped_bytes = self._enforce_bounds(
                    self._rows + added_rows, self._bytes + added_bytes
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"outbox write failed: {exc}") from exc
            self._rows += added_rows - dropped_rows
            self._bytes += added_bytes - dropped_bytes
            self._dropped += dropped_rows
            return seqs

    def _insert(self, item: OutboxItem, now: float) -> int:
        """Insert one row of the current group (inside a transaction); return its seq."""
        cursor = self._db.execute(
            "INSERT INTO outbox (grp, topic, payload, qos, retain, priority, kind,"
            " msg_id, created_at, snapshot_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self._grp,
                item.topic,
                item.payload,
                item.qos,
                int(item.retain),
                int(item.priority),
                item.kind,
                item.msg_id,
                now,
                item.snapshot_id,
            ),
        )
        return int(cursor.lastrowid or 0)

    def _enforce_bounds(self, rows: int, size: int) -> tuple[int, int]:
        """Drop low, then normal groups oldest-first until within bounds (inside a transaction)."""
        dropped_rows = 0
        dropped_bytes = 0
        while rows > self.max_rows or size > self.max_bytes:
            victim = self._db.execute(
                "SELECT grp FROM outbox WHERE priority < ? ORDER BY priority, seq LIMIT 1",
                (int(Priority.URGENT),),
            ).fetchone()
            if victim is None:
                break  # only urgent rows left: they are never dropped
            count, nbytes = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox WHERE grp = ?",
                (victim[0],),
            ).fetchone()
            self._db.execute("DELETE FROM outbox WHERE grp = ?", (victim[0],))
            rows -= count
            size -= nbytes
            dropped_rows += count
            dropped_bytes += nbytes
        if dropped_rows:
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES ('dropped', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (dropped_rows,),
            )
        return dropped_rows, dropped_bytes

    def delete(self, seqs: Sequence[int]) -> None:
        """Delete rows by seq (one transaction); unknown seqs are ignored.

        For rows no Ack can name (see `StoredItem.ackable`), after their PUBACK.
        """
        if seqs:
            self._delete_where([("seq", seqs)])

    def delete_acked(self, *, msg_ids: Sequence[str], snapshot_ids: Sequence[str]) -> list[int]:
        """Delete the rows a gateway Ack names (one transaction); return their seqs.

        Ids not in the outbox (already deleted, dropped, or never ours) are ignored. Losing a
        delete to a crash only means one more re-send with the same bytes, acked again.
        """
        if not msg_ids and not snapshot_ids:
            return []
        return self._delete_where([("msg_id", msg_ids), ("snapshot_id", snapshot_ids)])

    def _delete_where(self, pairs: list[tuple[str, Sequence[int | str]]]) -> list[int]:
        with self._lock:
            try:
                # No fsync for deletes: a lost delete only means one more duplicate, and WAL
                # commits stay ordered, so the next fsynced put makes this one durable anyway.
                # NORMAL (not OFF) still syncs at checkpoints, which keeps the file consistent.
                if self._synchronous == "full":
                    self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("BEGIN IMMEDIATE")
                removed: list[int] = []
                removed_bytes = 0
                for column, values in pairs:
                    # Chunks of 500 stay below SQLite's host-parameter limit (999 in old
                    # builds). The f-strings (S608) only name one of three fixed columns and
                    # repeat "?" placeholders; the values are bound.
                    assert column in {"seq", "msg_id", "snapshot_id"}
                    for start in range(0, len(values), 500):
                        chunk = list(values[start : start + 500])
                        marks = ",".join("?" * len(chunk))
                        rows = self._db.execute(
                            f"DELETE FROM outbox WHERE {column} IN ({marks})"  # noqa: S608
                            " RETURNING seq, LENGTH(payload)",
                            chunk,
                        ).fetchall()
                        removed += [int(r[0]) for r in rows]
                        removed_bytes += sum(int(r[1]) for r in rows)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"outbox delete failed: {exc}") from exc
            finally:
                if self._synchronous == "full":
                    self._db.execute("PRAGMA synchronous=FULL")
            self._rows -= len(removed)
            self._bytes -= removed_bytes
            return sorted(removed)

    # -- reading -------------------------------------------------------------------------

    def peek(self, *, after: int = 0, limit: int = 100) -> list[StoredItem]:
        """The oldest rows with seq > `after`, in replay order."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",  # noqa: S608
                (after, limit),
            ).fetchall()
        return [_stored(r) for r in rows]

    def get(self, seqs: Sequence[int]) -> list[StoredItem]:
        """The rows among `seqs` that still exist, in replay order (for re-sends)."""
        out: list[StoredItem] = []
        with self._lock:
            for start in range(0, len(seqs), 500):
                chunk = list(seqs[start : start + 500])
                marks = ",".join("?" * len(chunk))
                out += [
                    _stored(r)
                    for r in self._db.execute(
                        f"SELECT {_COLUMNS} FROM outbox WHERE seq IN ({marks})",  # noqa: S608
                        chunk,
                    )
                ]
        return sorted(out, key=lambda row: row.seq)

    def stats(self) -> OutboxStats:
        """Current depth, payload bytes and the all-time drop counter."""
        with self._lock:
            return OutboxStats(depth=self._rows, bytes=self._bytes, dropped=self._dropped)

    # -- command ledger ------------------------------------------------------------------

    def claim_command(self, command_id: str, now: float) -> CommandClaim:
        """Record `command_id` as started unless it was seen before; say which case it is.

        Recording *before* executing makes execution at-most-once: a crash mid-command leaves
        it `started`, and a redelivery is answered "interrupted" instead of run again.
        """
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute(
                    "SELECT state FROM commands WHERE command_id = ?", (command_id,)
                ).fetchone()
                if row is None:
                    self._db.execute(
                        "INSERT INTO commands (command_id, state, received_at) VALUES (?, ?, ?)",
                        (command_id, "started", now),
                    )
                    self._trim_ledger()
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"command ledger write failed: {exc}") from exc
        if row is None:
            return CommandClaim.NEW
        return CommandClaim.ANSWERED if row[0] == "answered" else CommandClaim.INTERRUPTED

    def complete_command(self, command_id: str, result: OutboxItem) -> None:
        """Queue the command's one result and mark it answered, atomically."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._grp += 1
                self._insert(result, time.time())
                self._db.execute(
                    "INSERT INTO commands (command_id, state, received_at) VALUES (?, ?, ?)"
                    " ON CONFLICT(command_id) DO UPDATE SET state = excluded.state",
                    (command_id, "answered", time.time()),
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"command result write failed: {exc}") from exc
            self._rows += 1
            self._bytes += len(result.payload)

    def _trim_ledger(self) -> None:
        # Keep the newest ids only: a redelivery arrives within seconds or minutes, not after
        # ten thousand newer commands.
        self._db.execute(
            "DELETE FROM commands WHERE command_id IN (SELECT command_id FROM commands"
            " ORDER BY received_at DESC LIMIT -1 OFFSET ?)",
            (self._ledger_size,),
        )

    # -- plumbing ------------------------------------------------------------------------

    def _counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _rollback(self) -> None:
        # Failing here means no transaction was open: nothing to undo.
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")

    def close(self) -> None:
        """Close the file (a checkpoint folds the WAL back into the database)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
