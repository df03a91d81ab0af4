"""Between the updater and the uplink: command arguments in, `CommandResult` reports out.

The command's own result answers it (state ``downloading``, or why not); each later
transition is one more ``model_update`` CommandResult whose id is ``<command id>.<seq>`` and
whose detail names the command, so the gateway follows the job without new message kinds:

    detail = {"command": id, "state": ..., "seq": n, "artifact": sha256,
              "running": {"name": ..., "version": ...} | None}
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from pydantic import ValidationError

from contract import Command, CommandResult, CommandStatus
from edge.model_update.updater import ModelUpdateArgs, ModelUpdater, Report

MODEL_UPDATE = "model_update"
_ERROR_STATES = {"failed", "rolled_back"}


class ResultSink(Protocol):
    """Where reports go (the uplink's durable outbox)."""

    def send_command_result(self, result: CommandResult) -> None:
        """Queue one result."""


def report_detail(report: Report) -> dict[str, Any]:
    """The detail every model_update result carries."""
    running = (
        None
        if report.running is None
        else {"name": report.running.name, "version": report.running.version}
    )
    return {
        "command": report.command_id,
        "state": report.state,
        "seq": report.seq,
        "artifact": report.sha256,
        "running": running,
    }


class UpdateReporting:
    """Implements `edge.commands.ModelUpdates` and turns reports into CommandResults."""

    def __init__(self, site_id: str, device_id: str, results: ResultSink) -> None:
        self.site_id = site_id
        self.device_id = device_id
        self._results = results
        self.updater: ModelUpdater | None = None

    def handle(self, command: Command) -> tuple[CommandStatus, str | None, dict[str, Any]]:
        """Validate the arguments and hand them to the updater."""
        try:
            args = ModelUpdateArgs.model_validate(command.args)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "(args)"
            return CommandStatus.REJECTED, f"invalid model_update args: {where}: {first['msg']}", {}
        assert self.updater is not None
        report = self.updater.command(command.command_id, args)
        status = CommandStatus.ERROR if report.state in _ERROR_STATES else CommandStatus.OK
        return status, report.reason, report_detail(report)

    def publish(self, report: Report) -> None:
        """One later transition as its own CommandResult."""
        status = CommandStatus.ERROR if report.state in _ERROR_STATES else CommandStatus.OK
        self._results.send_command_result(
            CommandResult(
                ts=time.time(),
                site_id=self.site_id,
                device_id=self.device_id,
                command_id=f"{report.command_id}.{report.seq}"[:128],
                name=MODEL_UPDATE,
                status=status,
                reason=None if report.reason is None else report.reason[:500],
                detail=report_detail(report),
            )
        )
