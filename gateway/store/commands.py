"""The command audit: every command a person sent to a device through the API.

A row is written (state ``pending``) before the command is published, then marked ``sent``
or ``unavailable`` (the broker was unreachable), so no command reaches a device unrecorded.
`record_result` (in `command_results`, for the ingest transaction) stores the device's
CommandResult on the row; it is keyed by site, device and command id, so a device can only
answer its own commands.
"""

from __future__ import annotations

from sqlalchemy import insert, select, update

from gateway.models import CommandPublic
from gateway.store.base import Part, from_row
from gateway.store.schema import commands

PENDING = "pending"
SENT = "sent"
UNAVAILABLE = "unavailable"


class CommandStore(Part):
    """Recording commands before they are published, and reading them back per device."""

    def record_command(self, command: CommandPublic) -> None:
        """Write the audit row of a command about to be published."""
        with self._tx() as conn:
            conn.execute(insert(commands).values(command.model_dump()))

    def finish_command(self, command_id: str, state: str) -> None:
        """Mark a recorded command `sent` or `unavailable`."""
        with self._tx() as conn:
            conn.execute(
                update(commands).where(commands.c.command_id == command_id).values(state=state)
            )

    def list_commands(
        self, site_id: str, device_id: str, *, offset: int = 0, limit: int = 100
    ) -> list[CommandPublic]:
        """A device's commands, newest first."""
        with self._read() as conn:
            rows = conn.execute(
                select(commands)
                .where(commands.c.site_id == site_id, commands.c.device_id == device_id)
                .order_by(commands.c.issued_at.desc(), commands.c.command_id)
                .offset(offset)
                .limit(limit)
            ).all()
        return [from_row(CommandPublic, r) for r in rows]
