"""The command ledger: which command ids were seen and answered, in the outbox's file.

Kept beside the outbox so a command's result row and its "answered" mark commit together, and
a QoS 1 redelivery or a restart never executes a command twice. The functions run inside the
caller's transaction on the outbox's connection.
"""

from __future__ import annotations

import sqlite3

from edge.outbox.items import CommandClaim


def claim(db: sqlite3.Connection, command_id: str, now: float, size: int) -> CommandClaim:
    """Record `command_id` as started unless seen before; say which case it is."""
    row = db.execute("SELECT state FROM commands WHERE command_id = ?", (command_id,)).fetchone()
    if row is None:
        db.execute(
            "INSERT INTO commands (command_id, state, received_at) VALUES (?, ?, ?)",
            (command_id, "started", now),
        )
        # Keep the newest ids only: a redelivery arrives within seconds or minutes, not after
        # `size` newer commands.
        db.execute(
            "DELETE FROM commands WHERE command_id IN (SELECT command_id FROM commands"
            " ORDER BY received_at DESC LIMIT -1 OFFSET ?)",
            (size,),
        )
        return CommandClaim.NEW
    return CommandClaim.ANSWERED if row[0] == "answered" else CommandClaim.INTERRUPTED


def mark_answered(db: sqlite3.Connection, command_id: str, now: float) -> None:
    """Mark `command_id` answered (its result row is written in the same transaction)."""
    db.execute(
        "INSERT INTO commands (command_id, state, received_at) VALUES (?, ?, ?)"
        " ON CONFLICT(command_id) DO UPDATE SET state = excluded.state",
        (command_id, "answered", now),
    )
