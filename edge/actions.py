"""Local actions an edge rule fires on the spot, with no round trip to the gateway.

The e-bike-in-elevator rule must warn and hold the door within the same frame that confirms the
bike, so rules hand an `ActionRequest` to an `ActionSink` synchronously. Sinks must return
quickly (queue the slow part); a sink failure is logged, never raised into the pipeline.

Sinks: `LoggingActionSink` (default and tests), `MqttActionSink` (a controller's topic on the
node's broker), `HttpActionSink` (POST to a controller, from a worker thread), and
`FanOutActionSink` to use several. MQTT and HTTP receive the same `ActionMessage` JSON.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import urllib.request
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


class ActionMessage(BaseModel):
    """What a controller receives (MQTT payload or HTTP body): the request plus who and when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_: Literal["guanjia.local_action/1"] = Field(
        default="guanjia.local_action/1", alias="schema"
    )
    ts: float
    site_id: str
    device_id: str
    action: ActionName
    camera_id: str
    zone_id: str
    event_id: str | None = None
    reason: str
    params: dict[str, JsonValue] = Field(default_factory=dict)

    @classmethod
    def of(cls, request: ActionRequest, *, site_id: str, device_id: str) -> ActionMessage:
        """Wrap `request` for the wire, stamped now."""
        return cls(
            ts=time.time(),
            site_id=site_id,
            device_id=device_id,
            **request.model_dump(),
        )

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON, `schema` included."""
        return self.model_dump_json(by_alias=True).encode()


class Publisher(Protocol):
    """The slice of the MQTT link an action sink needs (`edge.mqtt_link.MqttLink`)."""

    def publish_now(self, topic: str, payload: bytes, *, qos: int, retain: bool = False) -> bool:
        """Publish if connected; False when not."""


class MqttActionSink:
    """Publishes actions to a controller's topic (e.g. the elevator controller) on the broker.

    Not queued in the outbox: a door hold released minutes late, after a reconnect, would be
    wrong, so an action that cannot go out now is logged and counted as failed.
    """

    def __init__(
        self, publisher: Publisher, topic: str, *, site_id: str, device_id: str, qos: int = 1
    ) -> None:
        self._publisher = publisher
        self.topic = topic
        self.site_id = site_id
        self.device_id = device_id
        self.qos = qos
        self.sent = 0
        self.failed = 0

    def fire(self, request: ActionRequest) -> None:
        """Publish now, or log and count the failure."""
        message = ActionMessage.of(request, site_id=self.site_id, device_id=self.device_id)
        if self._publisher.publish_now(self.topic, message.to_json(), qos=self.qos):
            self.sent += 1
        else:
            self.failed += 1
            log.warning(
                "local action %s not sent to %s: broker offline", request.action, self.topic
            )


class HttpActionSink:
    """POSTs actions as JSON to a controller's URL from a worker thread (stdlib urllib).

    `fire` only enqueues; a full queue drops the action with a warning rather than block the
    frame loop. A bearer token, if configured, is sent in the Authorization header and never
    logged.
    """

    def __init__(
        self,
        url: str,
        *,
        site_id: str,
        device_id: str,
        timeout_s: float = 2.0,
        token: str | None = None,
        queue_size: int = 32,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"action URL must be http(s): {url!r}")
        self.url = url
        self.site_id = site_id
        self.device_id = device_id
        self.timeout_s = timeout_s
        self._token = token
        self._queue: queue.Queue[ActionMessage | None] = queue.Queue(queue_size)
        self.sent = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="http-actions", daemon=True)
        self._thread.start()

    def fire(self, request: ActionRequest) -> None:
        """Queue the POST; never blocks."""
        message = ActionMessage.of(request, site_id=self.site_id, device_id=self.device_id)
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            self.failed += 1
            log.warning("local action %s dropped: HTTP queue full", request.action)

    def close(self, timeout: float = 5.0) -> None:
        """Finish queued POSTs (up to `timeout`), then stop the worker."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            message = self._queue.get()
            if message is None:
                return
            headers = {"Content-Type": "application/json"}
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            req = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
                self.url, data=message.to_json(), headers=headers, method="POST"
            )
            try:
                # S310 warns of file:// URLs: the scheme was checked in __init__.
                with urllib.request.urlopen(req, timeout=self.timeout_s) as response:  # noqa: S310
                    response.read()
                self.sent += 1
            except (OSError, ValueError) as exc:
                # urllib's HTTPError and URLError are OSErrors; one failed POST must not stop
                # the worker.
                self.failed += 1
                log.warning("local action %s to %s failed: %s", message.action, self.url, exc)


class FanOutActionSink:
    """Sends every action to several sinks; one failing sink does not stop the others."""

    def __init__(self, sinks: list[ActionSink]) -> None:
        self.sinks = sinks

    def fire(self, request: ActionRequest) -> None:
        """Fire on each sink in turn."""
        for sink in self.sinks:
            try:
                sink.fire(request)
            except Exception:
                log.exception("action sink %s failed", type(sink).__name__)
