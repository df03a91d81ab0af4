"""A device's CommandResult on the audit row of the command it answers, written by the
ingest transaction (its own module: `commands` needs `Part`, which needs the ingest
transaction)."""

from __future__ import annotations

from sqlalchemy import Connection, update

from gateway.store.schema import commands


def record_result(
    conn: Connection,
    *,
    site_id: str,
    device_id: str,
    command_id: str,
    status: str,
    reason: str | None,
    at: float,
) -> bool:
    """Store a device's answer in the caller's transaction (ingest's). False when no command
    of that id was sent to that device through the API, or it was already answered."""
    result = conn.execute(
        update(commands)
        .where(
            commands.c.command_id == command_id,
            commands.c.site_id == site_id,
            commands.c.device_id == device_id,
            commands.c.result_status.is_(None),
        )
        .values(result_status=status, result_reason=reason, result_at=at)
    )
    return bool(result.rowcount)
