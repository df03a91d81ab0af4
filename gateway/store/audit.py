"""The ticket audit log's rows: one per transition, merge, photo and escalation.

Ingest buffers them and writes a batch's lines with one executemany (`IngestTx.flush`);
people's transitions and escalations write theirs at once. Both build them here, so every
line has the same shape whoever wrote it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert

from gateway.store.schema import audit_log

INSERT = insert(audit_log)


def entry(
    ticket_id: int,
    at: float,
    actor: str,
    action: str,
    *,
    from_state: str | None = None,
    to_state: str | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One audit-log row (`actor` is a username, or ``system:<part>`` for the gateway)."""
    return {
        "ticket_id": ticket_id,
        "at": at,
        "actor": actor,
        "action": action,
        "from_state": from_state,
        "to_state": to_state,
        "detail": detail or {},
    }


def write(conn: Connection, *entries: dict[str, Any]) -> None:
    """Insert audit-log rows in the caller's transaction."""
    conn.execute(INSERT, list(entries))
