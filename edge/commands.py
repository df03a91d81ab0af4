"""Commands from the gateway: validate, authorise, execute at most once, answer exactly once.

The node subscribes to its own ``cmd/+`` (`contract.subscription(Channel.CMD, ...)`). Every
message that arrives there gets exactly one `CommandResult` on ``cmd_result``:

=================================  ============  ===========================================
what arrived                       status        reason
=================================  ============  ===========================================
not JSON, too big, wrong schema,   rejected      the contract error (`str(ContractError)`)
unknown/missing/invalid field
addressed to another site/device   rejected      "not addressed to this device ..."
issuer not in allowed_issuers      rejected      "unauthorised: ..."
past `expires_at`                  expired       "expired at ..."
unknown command name               unsupported   "unknown command ..."
``model_update`` on a node without unsupported   "model updates are not enabled ..."
``model_updates`` in NODE.yaml
``model_update`` with bad args     rejected      the argument problem
``model_update``                   ok / error    detail: state (downloading … active,
                                                 failed, rolled_back), seq, artifact
``actuate`` with a bad/forbidden   rejected      the argument problem
action
``actuate`` whose action failed    error         "action … failed: broker refused the
(refused publish, no subscriber,                 publish to T: Not authorized" etc.
failed POST) or is unconfirmed
``config`` that does not validate  rejected      the validation problem; nothing changed
``ping``, valid ``actuate`` /      ok            -
``config``
a handler failure                  error         the exception text
=================================  ============  ===========================================

Exactly once: the command id is claimed in the outbox's ledger *before* executing, and the
result is queued with the "answered" mark in one transaction. A QoS 1 redelivery of an
answered id is ignored; an id that was claimed but never answered (the node died mid-command)
is answered ``error`` "interrupted" and not run again, so an actuator never fires twice.
Messages whose command id cannot even be read are answered with ``command_id`` ``"unknown"``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from contract import (
    Command,
    CommandResult,
    CommandStatus,
    ContractError,
    decode_for_topic,
    parse_topic,
)
from edge.actions import ActionName, ActionRequest, ActionSink
from edge.node_config import CommandSettings, RuntimeConfig
from edge.outbox import CommandClaim

log = logging.getLogger(__name__)

_MAX_REASON = 500
# The ActuateArgs fields that become the action's params (the rest say which action, where).
_ACTION_PARAMS = {"text", "duration_s", "channel", "on"}


class ConfigRejectedError(ValueError):
    """A ``config`` command that cannot be applied; nothing was changed."""


class ResultChannel(Protocol):
    """Where results go: the ledger-backed outbox (see `edge.uplink.Uplink`)."""

    def claim_command(self, command_id: str, now: float) -> CommandClaim:
        """Record the id as started unless seen; say which case it is."""

    def complete_command(self, command_id: str, result: CommandResult) -> None:
        """Queue the id's one result and mark it answered, atomically."""

    def send_command_result(self, result: CommandResult) -> None:
        """Queue a result that has no usable command id."""


class ModelUpdates(Protocol):
    """The node's model updater (edge.model_update), seen from the command handler."""

    def handle(self, command: Command) -> tuple[CommandStatus, str | None, dict[str, Any]]:
        """Validate and start/revert/cancel; the status, reason and detail of the answer."""


class ActuateArgs(BaseModel):
    """Arguments of ``actuate``: which local action, where, and its parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: ActionName
    camera_id: str = Field(default="remote", max_length=64)
    zone_id: str = Field(default="remote", max_length=64)
    text: str | None = Field(default=None, max_length=200, description="Voice warning text.")
    duration_s: Annotated[float, Field(gt=0, le=600)] | None = None
    channel: Annotated[int, Field(ge=0, le=64)] | None = Field(
        default=None, description="Relay channel."
    )
    on: bool | None = Field(default=None, description="Relay state.")


def _reason(text: str) -> str:
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def _validation_reason(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "(args)"
    more = len(exc.errors()) - 1
    return f"{where}: {first['msg']}" + (f" (and {more} more)" if more else "")


def _peek_command_id(payload: bytes) -> str | None:
    """The command id of a message that failed validation, if it has a readable one."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(data, dict):
        value = data.get("command_id")
        if isinstance(value, str) and 1 <= len(value) <= 128:
            return value
    return None


class CommandHandler:
    """Turns one received command message into at most one execution and exactly one result."""

    def __init__(
        self,
        *,
        site_id: str,
        device_id: str,
        settings: CommandSettings,
        results: ResultChannel,
        actions: ActionSink,
        apply_config: Callable[[RuntimeConfig], None],
        ping_detail: Callable[[], dict[str, JsonValue]],
        model_updates: ModelUpdates | None = None,
    ) -> None:
        self.site_id = site_id
        self.device_id = device_id
        self.settings = settings
        self._results = results
        self._actions = actions
        self._apply_config = apply_config
        self._ping_detail = ping_detail
        self._model_updates = model_updates
        self._handlers: dict[str, Callable[[Command], CommandResult]] = {
            "ping": self._ping,
            "config": self._config,
            "actuate": self._actuate,
            "model_update": self._model_update,
        }

    def handle(self, topic: str, payload: bytes, now: float) -> CommandResult | None:
        """Process one message from ``cmd/+``; return the result queued, or None if a repeat."""
        name = self._topic_name(topic)
        try:
            parsed, message = decode_for_topic(topic, payload)
        except ContractError as exc:
            return self._answer_unparsed(payload, name, now, CommandStatus.REJECTED, str(exc))
        if (parsed.site_id, parsed.device_id) != (self.site_id, self.device_id):
            return self._answer_unparsed(
                payload,
                name,
                now,
                CommandStatus.REJECTED,
                f"not addressed to this device ({parsed.site_id}/{parsed.device_id} is not "
                f"{self.site_id}/{self.device_id})",
            )
        assert isinstance(message, Command)  # cmd/+ decodes to Command or raises
        claim = self._results.claim_command(message.command_id, now)
        if claim is CommandClaim.ANSWERED:
            log.info("ignored a repeat of command %s (already answered)", message.command_id)
            return None
        if claim is CommandClaim.INTERRUPTED:
            result = self._result(
                message,
                now,
                CommandStatus.ERROR,
                "interrupted: the node restarted while running this command; not re-run",
            )
        else:
            result = self._execute(message, now)
        self._results.complete_command(message.command_id, result)
        log.info(
            "command %s %s from %s: %s%s",
            message.name,
            message.command_id,
            message.issued_by or "?",
            result.status.value,
            f" ({result.reason})" if result.reason else "",
        )
        return result

    # -- steps ---------------------------------------------------------------------------

    def _execute(self, command: Command, now: float) -> CommandResult:
        issuer = command.issued_by or ""
        if not any(
            issuer == allowed or (allowed.endswith(":") and issuer.startswith(allowed))
            for allowed in self.settings.allowed_issuers
        ):
            return self._result(
                command,
                now,
                CommandStatus.REJECTED,
                f"unauthorised: issuer {command.issued_by!r} may not command this node",
            )
        if command.expires_at is not None and now > command.expires_at:
            return self._result(
                command, now, CommandStatus.EXPIRED, f"expired at {command.expires_at:.3f}"
            )
        handler = self._handlers.get(command.name)
        if handler is None:
            known = ", ".join(sorted(self._handlers))
            return self._result(
                command,
                now,
                CommandStatus.UNSUPPORTED,
                f"unknown command {command.name!r}; this node knows {known}",
            )
        try:
            return handler(command).model_copy(update={"ts": now})
        except Exception as exc:
            # A bug in one handler answers `error` and keeps the node running.
            log.exception("command %s failed", command.command_id)
            return self._result(command, now, CommandStatus.ERROR, f"{type(exc).__name__}: {exc}")

    def _ping(self, command: Command) -> CommandResult:
        return self._result(command, 0.0, CommandStatus.OK, None, self._ping_detail())

    def _config(self, command: Command) -> CommandResult:
        try:
            runtime = RuntimeConfig.model_validate(command.args)
        except ValidationError as exc:
            return self._result(
                command, 0.0, CommandStatus.REJECTED, f"invalid config: {_validation_reason(exc)}"
            )
        try:
            self._apply_config(runtime)
        except ConfigRejectedError as exc:
            return self._result(command, 0.0, CommandStatus.REJECTED, f"config rejected: {exc}")
        return self._result(
            command, 0.0, CommandStatus.OK, None, {"config_version": runtime.config_version}
        )

    def _actuate(self, command: Command) -> CommandResult:
        try:
            args = ActuateArgs.model_validate(command.args)
        except ValidationError as exc:
            return self._result(
                command,
                0.0,
                CommandStatus.REJECTED,
                f"invalid actuate args: {_validation_reason(exc)}",
            )
        if args.action not in self.settings.allowed_actions:
            return self._result(
                command,
                0.0,
                CommandStatus.REJECTED,
                f"unauthorised: action {args.action!r} is not enabled on this node",
            )
        params: dict[str, JsonValue] = {
            key: value
            for key, value in args.model_dump(include=_ACTION_PARAMS).items()
            if value is not None
        }
        outcome = self._actions.fire(
            ActionRequest(
                action=args.action,
                camera_id=args.camera_id,
                zone_id=args.zone_id,
                reason=_reason(f"command {command.command_id} from {command.issued_by}")[:200],
                params=params,
            )
        )
        # Answer what happened, not what was attempted: a publish the broker refused (ACL) or
        # a POST that failed is an error with the reason, never `ok`.
        timeout = self.settings.action_timeout_s
        if not outcome.wait(timeout):
            return self._result(
                command,
                0.0,
                CommandStatus.ERROR,
                f"action {args.action} not confirmed within {timeout:g} s",
            )
        if not outcome.ok:
            return self._result(
                command,
                0.0,
                CommandStatus.ERROR,
                f"action {args.action} failed: {outcome.reason}",
                {"action": args.action},
            )
        return self._result(command, 0.0, CommandStatus.OK, None, {"action": args.action})

    def _model_update(self, command: Command) -> CommandResult:
        if self._model_updates is None:
            return self._result(
                command,
                0.0,
                CommandStatus.UNSUPPORTED,
                "model updates are not enabled on this node (model_updates in NODE.yaml)",
            )
        status, reason, detail = self._model_updates.handle(command)
        return self._result(command, 0.0, status, reason, detail)

    # -- results -------------------------------------------------------------------------

    def _result(
        self,
        command: Command,
        now: float,
        status: CommandStatus,
        reason: str | None,
        detail: dict[str, Any] | None = None,
    ) -> CommandResult:
        return CommandResult(
            ts=now,
            site_id=self.site_id,
            device_id=self.device_id,
            command_id=command.command_id,
            name=command.name,
            status=status,
            reason=None if reason is None else _reason(reason),
            detail=detail or {},
        )

    def _answer_unparsed(
        self, payload: bytes, name: str, now: float, status: CommandStatus, reason: str
    ) -> CommandResult | None:
        command_id = _peek_command_id(payload)
        result = CommandResult(
            ts=now,
            site_id=self.site_id,
            device_id=self.device_id,
            command_id=command_id or "unknown",
            name=name,
            status=status,
            reason=_reason(reason),
        )
        if command_id is None:
            self._results.send_command_result(result)
        else:
            if self._results.claim_command(command_id, now) is not CommandClaim.NEW:
                return None
            self._results.complete_command(command_id, result)
        log.warning("rejected a message on cmd/%s: %s", name, result.reason)
        return result

    @staticmethod
    def _topic_name(topic: str) -> str:
        try:
            name = parse_topic(topic).name
        except ContractError:
            name = None
        return name or "unknown"
