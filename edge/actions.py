"""Local actions an edge rule fires on the spot, with no round trip to the gateway.

The e-bike-in-elevator rule must warn and hold the door within the same frame that confirms the
bike, so rules hand an `ActionRequest` to an `ActionSink` synchronously. Sinks must return
quickly (queue the slow part); a sink failure is logged, never raised into the pipeline.
"""

from __future__ import annotations

import logging
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, JsonValue

ActionName = Literal["voice_warning", "door_hold", "relay"]

log = logging.getLogger(__name__)


class ActionRequest(BaseModel):
    """One local action: what to do, and why (for the audit trail in the event)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: ActionName
    camera_id: str
    zone_id: str
    event_id: str | None = None
    reason: str = Field(max_length=200)
    params: dict[str, JsonValue] = Field(default_factory=dict)


class ActionSink(Protocol):
    """Where rules send local actions."""

    def fire(self, request: ActionRequest) -> None:
        """Start the action; must not block the frame loop."""


class LoggingActionSink:
    """Logs every action and keeps them in memory: the default sink, and the test sink."""

    def __init__(self) -> None:
        self.fired: list[ActionRequest] = []

    def fire(self, request: ActionRequest) -> None:
        """Record and log the request."""
        self.fired.append(request)
        log.info(
            "local action %s on %s/%s: %s",
            request.action,
            request.camera_id,
            request.zone_id,
            request.reason,
        )
