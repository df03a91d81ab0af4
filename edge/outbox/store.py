"""`Outbox`: the durable FIFO itself — group-committed puts, bounds, acked deletes, reads."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from edge.outbox import ledger
from edge.outbox.group_commit import GroupCommit
from edge.outbox.items import (
    CommandClaim,
    CommitStats,
    OutboxError,
    OutboxItem,
    OutboxStats,
    Priority,
    StoredItem,
)
from edge.outbox.schema import COLUMNS, INSERT, open_file, stored


class Outbox:
    """A thread-safe durable FIFO of publishable messages with a bounded drop policy.

    One connection guarded by a lock: the capture threads put, the publisher peeks and acks.
    Puts that arrive while another put is committing share the next transaction (see
    `edge.outbox.group_commit`); each returns only once its own rows are committed.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_rows: int = 100_000,
        max_bytes: int = 512 * 1024 * 1024,
        synchronous: Literal["full", "normal"] = "full",
        command_ledger_size: int = 10_000,
        group_max_wait_s: float = 0.002,
    ) -> None:
        if max_rows < 1 or max_bytes < 1:
            raise ValueError("outbox bounds must be positive")
        self.path = path
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self._ledger_size = command_ledger_size
        self._synchronous = synchronous
        self._lock = threading.Lock()
        db = open_file(path, synchronous)
        try:
            rows, size = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
            ).fetchone()
            self._grp = int(db.execute("SELECT COALESCE(MAX(grp), 0) FROM outbox").fetchone()[0])
        except sqlite3.Error as exc:
            db.close()
            raise OutboxError(f"cannot open outbox {path}: {exc}") from exc
        self._db = db
        self._rows = int(rows)
        self._bytes = int(size)
        self._dropped = self._counter("dropped")
        self._groups_committed = 0
        self._commits = 0
        self._group_commit: GroupCommit[Sequence[OutboxItem], list[int]] = GroupCommit(
            self._commit_groups, max_wait_s=group_max_wait_s
        )

    # -- writing -------------------------------------------------------------------------

    def put(self, items: Sequence[OutboxItem]) -> list[int]:
        """Store `items` as one group, in order; return their seqs once committed.

        When this returns, the rows are on disk (fsynced with ``synchronous=full``); groups put
        concurrently by other threads may share the transaction. A group is dropped as a whole
        under pressure, so put a snapshot and its event together.
        """
        if not items:
            return []
        return self._group_commit.submit(items)

    def _commit_groups(self, groups: Sequence[Sequence[OutboxItem]]) -> list[list[int]]:
        """Write every group in one transaction (each its own drop group); their seqs."""
        now = time.time()
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                seqs: list[list[int]] = []
                for items in groups:
                    self._grp += 1
                    seqs.append([self._insert(item, now) for item in items])
                added_rows = sum(len(items) for items in groups)
                added_bytes = sum(len(item.payload) for items in groups for item in items)
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
            self._groups_committed += len(groups)
            self._commits += 1
            return seqs

    def _insert(self, item: OutboxItem, now: float) -> int:
        """Insert one row of the current group (inside a transaction); return its seq."""
        cursor = self._db.execute(
            INSERT,
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
                f"SELECT {COLUMNS} FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",  # noqa: S608
                (after, limit),
            ).fetchall()
        return [stored(r) for r in rows]

    def get(self, seqs: Sequence[int]) -> list[StoredItem]:
        """The rows among `seqs` that still exist, in replay order (for re-sends)."""
        out: list[StoredItem] = []
        with self._lock:
            for start in range(0, len(seqs), 500):
                chunk = list(seqs[start : start + 500])
                marks = ",".join("?" * len(chunk))
                out += [
                    stored(r)
                    for r in self._db.execute(
                        f"SELECT {COLUMNS} FROM outbox WHERE seq IN ({marks})",  # noqa: S608
                        chunk,
                    )
                ]
        return sorted(out, key=lambda row: row.seq)

    def stats(self) -> OutboxStats:
        """Current depth, payload bytes and the all-time drop counter."""
        with self._lock:
            return OutboxStats(depth=self._rows, bytes=self._bytes, dropped=self._dropped)

    def commit_stats(self) -> CommitStats:
        """Groups committed and the transactions they took, since this Outbox was opened."""
        with self._lock:
            return CommitStats(groups=self._groups_committed, commits=self._commits)

    # -- command ledger ------------------------------------------------------------------

    def claim_command(self, command_id: str, now: float) -> CommandClaim:
        """Record `command_id` as started unless it was seen before; say which case it is.

        Recording *before* executing makes execution at-most-once: a crash mid-command leaves
        it `started`, and a redelivery is answered "interrupted" instead of run again.
        """
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                claim = ledger.claim(self._db, command_id, now, self._ledger_size)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"command ledger write failed: {exc}") from exc
        return claim

    def complete_command(self, command_id: str, result: OutboxItem) -> None:
        """Queue the command's one result and mark it answered, atomically."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._grp += 1
                self._insert(result, time.time())
                ledger.mark_answered(self._db, command_id, time.time())
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"command result write failed: {exc}") from exc
            self._rows += 1
            self._bytes += len(result.payload)

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
