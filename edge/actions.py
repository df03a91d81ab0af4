"""Local actions an edge rule fires on the spot, with no round trip to the gateway.

The e-bike-in-elevator rule must warn and hold the door within the same frame that confirms the
bike, so rules hand an `ActionRequest` to an `ActionSink` synchronously. Sinks must return
quickly (queue the slow part); a sink failure is logged, never raised into the pipeline.

`fire` returns an `ActionOutcome` that resolves once the sink knows whether the action got
through: the broker accepted the publish (MQTT 5 PUBACK) or refused it (``Not authorized``
when the ACL does not grant the node the controller topic; no subscriber on it), the
controller answered the POST, or it failed. The frame loop does not wait for it (the sink
logs and counts failures); an ``actuate`` command waits, and answers ``error`` with the
reason when the action failed.

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
from collections.abc import Callable
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


class ActionOutcome:
    """Whether one fired action got through; resolved once, now or later (thread-safe)."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[ActionOutcome], None]] = []
        self.ok: bool | None = None
        self.reason: str | None = None

    @classmethod
    def succeeded(cls) -> ActionOutcome:
        """An outcome that is already a success."""
        outcome = cls()
        outcome.resolve(True)
        return outcome

    def resolve(self, ok: bool, reason: str | None = None) -> None:
        """Settle the outcome; later calls are ignored."""
        with self._lock:
            if self._done.is_set():
                return
            self.ok, self.reason = ok, reason
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)

    def wait(self, timeout: float) -> bool:
        """Block until resolved or `timeout` s passed; True if resolved."""
        return self._done.wait(timeout)

    def on_done(self, callback: Callable[[ActionOutcome], None]) -> None:
        """Call `callback` once resolved (at once if it already is)."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    @classmethod
    def all_of(cls, outcomes: list[ActionOutcome]) -> ActionOutcome:
        """Succeeds when every outcome does; fails with every failure's reason."""
        combined = cls()
        remaining = [len(outcomes)]
        lock = threading.Lock()

        def settle(_: ActionOutcome) -> None:
            with lock:
                remaining[0] -= 1
                if remaining[0]:
                    return
            failures = [o.reason or "failed" for o in outcomes if not o.ok]
            combined.resolve(not failures, "; ".join(failures) or None)

        if not outcomes:
            combined.resolve(True)
        for outcome in outcomes:
            outcome.on_done(settle)
        return combined


class ActionSink(Protocol):
    """Where rules send local actions."""

    def fire(self, request: ActionRequest) -> ActionOutcome:
        """Start the action; must not block the frame loop."""


class LoggingActionSink:
    """Logs every action and keeps them in memory: the default sink, and the test sink."""

    def __init__(self) -> None:
        self.fired: list[ActionRequest] = []

    def fire(self, request: ActionRequest) -> ActionOutcome:
        """Record and log the request."""
        self.fired.append(request)
        log.info(
            "local action %s on %s/%s: %s",
            request.action,
            request.camera_id,
            request.zone_id,
            request.reason,
        )
        return ActionOutcome.succeeded()


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

    def publish_now(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int,
        retain: bool = False,
        on_outcome: Callable[[bool, str | None], None] | None = None,
    ) -> bool:
        """Publish if connected (False when not); `on_outcome` gets the broker's verdict."""


class MqttActionSink:
    """Publishes actions to a controller's topic (e.g. the elevator controller) on the broker.

    Not queued in the outbox: a door hold released minutes late, after a reconnect, would be
    wrong, so an action that cannot go out now is logged and counted as failed. With QoS 1 an
    action counts as sent only once the broker accepted it (MQTT 5 PUBACK): a refused publish
    (the node was never granted the topic: ``guanjia device add … --grant-write TOPIC``) or one
    no subscriber received is failed, with the broker's reason.
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
        self.last_failure: str | None = None
        self._lock = threading.Lock()

    def fire(self, request: ActionRequest) -> ActionOutcome:
        """Publish now; the outcome (and the sent/failed counts) follow the broker's answer."""
        message = ActionMessage.of(request, site_id=self.site_id, device_id=self.device_id)
        outcome = ActionOutcome()

        def settle(ok: bool, reason: str | None) -> None:
            with self._lock:
                if ok:
                    self.sent += 1
                else:
                    self.failed += 1
                    self.last_failure = reason
            if not ok:
                log.error("local action %s failed: %s", request.action, reason)
            outcome.resolve(ok, reason)

        if not self._publisher.publish_now(
            self.topic, message.to_json(), qos=self.qos, on_outcome=settle
        ):
            settle(False, f"broker offline: not sent to {self.topic}")
        return outcome


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
        self._queue: queue.Queue[tuple[ActionMessage, ActionOutcome] | None] = queue.Queue(
            queue_size
        )
        self.sent = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="http-actions", daemon=True)
        self._thread.start()

    def fire(self, request: ActionRequest) -> ActionOutcome:
        """Queue the POST; never blocks. The outcome follows the controller's answer."""
        message = ActionMessage.of(request, site_id=self.site_id, device_id=self.device_id)
        outcome = ActionOutcome()
        try:
            self._queue.put_nowait((message, outcome))
        except queue.Full:
            self.failed += 1
            log.warning("local action %s dropped: HTTP queue full", request.action)
            outcome.resolve(False, f"HTTP queue full: not sent to {self.url}")
        return outcome

    def close(self, timeout: float = 5.0) -> None:
        """Finish queued POSTs (up to `timeout`), then stop the worker."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            message, outcome = item
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
                outcome.resolve(True)
            except (OSError, ValueError) as exc:
                # urllib's HTTPError and URLError are OSErrors; one failed POST must not stop
                # the worker.
                self.failed += 1
                log.warning("local action %s to %s failed: %s", message.action, self.url, exc)
                outcome.resolve(False, f"POST to {self.url} failed: {exc}")


class FanOutActionSink:
    """Sends every action to several sinks; one failing sink does not stop the others."""

    def __init__(self, sinks: list[ActionSink]) -> None:
        self.sinks = sinks

    def fire(self, request: ActionRequest) -> ActionOutcome:
        """Fire on each sink in turn; the outcome fails if any sink's does."""
        outcomes: list[ActionOutcome] = []
        for sink in self.sinks:
            try:
                outcomes.append(sink.fire(request))
            except Exception as exc:
                log.exception("action sink %s failed", type(sink).__name__)
                failed = ActionOutcome()
                failed.resolve(False, f"{type(sink).__name__}: {exc}")
                outcomes.append(failed)
        return ActionOutcome.all_of(outcomes)
