"""The node's MQTT connection: the only module on the edge that imports paho-mqtt.

What it owns:

- Identity and security: client id = device id, per-device username/password, optional TLS.
- **MQTT 5** with a **persistent session**: ``clean_start=False`` on every connect and a
  `session_expiry_s` CONNECT property, so the broker keeps the node's subscriptions and
  queues QoS 1 commands (and acks) for it while it is offline, up to that long. MQTT 5
  because its PUBACK carries a reason code: a publish the broker's ACL refuses comes back
  ``Not authorized`` (0x87) instead of a silent success as in 3.1.1, and `publish_now`
  reports it to its caller (a local action to a controller topic the node was never granted
  is a failed action, not a sent one).
- Availability: the last will is a retained ``offline`` Status, rebuilt before every connect
  attempt (so its `ts` is the connect time); every successful connect publishes a retained
  ``online``; a clean `stop` publishes a retained ``offline`` itself (a clean disconnect
  suppresses the will).
- Subscriptions, re-sent on every connect (cheap, and right even when the broker lost the
  session).

What it deliberately does *not* own is retransmission. On every connect it drops paho's own
queue of unacknowledged messages and tells its listener, which replays from the durable outbox
in order. One mechanism then covers a reconnect, a restart and a power cut, and the wire order
after a reconnect is always the outbox order (a snapshot before its event). `publish` refuses
(returns None) while disconnected or when the caller's `generation` is stale, so nothing slips
onto a new connection ahead of the replay.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import threading
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from contract import Status, encode, status_topic
from edge.link_options import LinkListener, LinkOptions, Outcome
from edge.publish_acks import PendingAcks, Token, Waiting

log = logging.getLogger(__name__)

# MQTT 5 PUBACK 0x10: accepted, but no subscription matched. For a controller topic that means
# nobody (no controller) received the action.
_NO_MATCHING_SUBSCRIBERS = 0x10


def _no_delay(client: paho.Client, userdata: object, sock: Any) -> None:
    """Send each packet at once (TCP_NODELAY).

    Delivery keeps a window of QoS 1 publishes awaiting PUBACKs; with Nagle's algorithm the
    next small PUBLISH waits for the peer's delayed TCP ACK, ~40 ms a round on Linux, which
    measured as the uplink's bound (PUBACK p50 40 ms, ~600 events/s). paho does not set it.
    """
    with contextlib.suppress(OSError, AttributeError):  # not a TCP socket (tests, proxies)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class MqttLink:
    """One paho client with a background network thread and automatic reconnect."""

    def __init__(self, options: LinkOptions, listener: LinkListener) -> None:
        self.options = options
        self._listener = listener
        self._lock = threading.Lock()
        self._connected = False
        self._generation = 0
        self._stopping = False
        self._unacked_subscribes: set[int] = set()
        self._send_window = options.inflight
        self._acks: PendingAcks[ReasonCode] = PendingAcks()
        self._status_topic = str(status_topic(options.site_id, options.device_id))
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=options.device_id,
            protocol=(
                MQTTProtocolVersion.MQTTv5
                if options.protocol == "5"
                else MQTTProtocolVersion.MQTTv311
            ),
            # 3.1.1 has no clean_start: a persistent session is clean_session=False.
            clean_session=None if options.protocol == "5" else False,
            manual_ack=True,
        )
        if options.username is not None:
            client.username_pw_set(
                options.username,
                None if options.password is None else options.password.get_secret_value(),
            )
        if options.tls:
            client.tls_set(
                ca_certs=options.ca_file, certfile=options.cert_file, keyfile=options.key_file
            )
        # Delivery keeps at most `send_window` (<= `inflight`) messages awaiting a PUBACK;
        # paho's own window is the upper bound, so it never queues behind our back.
        client.max_inflight_messages_set(options.inflight)
        client.reconnect_delay_set(
            max(1, math.floor(options.reconnect_min_s)), max(1, math.ceil(options.reconnect_max_s))
        )
        client.on_pre_connect = self._on_pre_connect
        client.on_socket_open = _no_delay
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background; returns at once, reconnects forever."""
        if self.options.protocol != "5":
            self._client.connect_async(
                self.options.host, self.options.port, keepalive=self.options.keepalive_s
            )
            self._client.loop_start()
            return
        # paho's Properties class has no type hints.
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self.options.session_expiry_s
        # clean_start=False on every connect (paho's default starts clean the first time):
        # a restarted node resumes its session and gets the commands queued meanwhile.
        self._client.connect_async(
            self.options.host,
            self.options.port,
            keepalive=self.options.keepalive_s,
            clean_start=False,
            properties=properties,
        )
        self._client.loop_start()

    def stop(self, reason: str = "shutdown", timeout: float = 3.0) -> None:
        """Publish a retained ``offline`` (if connected), disconnect cleanly, stop the thread."""
        with self._lock:
            self._stopping = True
            connected = self._connected
        if connected:
            info = self._client.publish(
                self._status_topic, self._status("offline", reason), qos=1, retain=True
            )
            try:
                info.wait_for_publish(timeout=timeout)
            except (RuntimeError, ValueError):
                log.warning("could not publish the offline status before shutdown")
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def connected(self) -> bool:
        """True between a successful CONNACK and the next disconnect."""
        with self._lock:
            return self._connected

    @property
    def subscribed(self) -> bool:
        """True once the broker granted this connection's subscriptions (SUBACK).

        Until then a command published to the node may not be routed to it yet.
        """
        with self._lock:
            return self._connected and not self._unacked_subscribes

    @property
    def send_window(self) -> int:
        """Publishes that may await a PUBACK at once on this connection: `inflight`, or the
        broker's smaller MQTT 5 Receive Maximum."""
        with self._lock:
            return self._send_window

    @property
    def generation(self) -> int:
        """Number of successful connects so far (0 before the first)."""
        with self._lock:
            return self._generation

    # -- publishing ----------------------------------------------------------------------

    def publish(
        self, topic: str, payload: bytes, *, qos: int, retain: bool, generation: int, token: int
    ) -> bool:
        """Publish on connection `generation`; `listener.published(generation, token)` follows.

        False means nothing was sent: the link is down or has reconnected since the caller
        read `generation`, and the caller replays from its outbox after `link_up`.
        """
        with self._lock:
            if not self._connected or generation != self._generation:
                return False
            info = self._client.publish(topic, payload, qos=qos, retain=retain)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return False
            early = self._acks.track(info.mid, token)
        if early is not None:
            self._deliver(token, early)
        return True

    def publish_now(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int,
        retain: bool = False,
        on_outcome: Outcome | None = None,
    ) -> bool:
        """Publish now when connected (heartbeats, local actions); False (nothing sent) if down.

        With `on_outcome` and QoS 1, the broker's verdict follows on paho's thread: refused
        (e.g. the ACL: ``Not authorized``), accepted with no subscriber, or lost with the
        connection. QoS 0 has no verdict: `on_outcome` is told success at once.
        """
        with self._lock:
            if not self._connected:
                return False
            info = self._client.publish(topic, payload, qos=qos, retain=retain)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return False
            waiting = None if on_outcome is None else Waiting(topic, on_outcome)
            early = None if qos == 0 else self._acks.track(info.mid, waiting)
        if waiting is not None and (qos == 0 or early is not None):
            self._deliver(waiting, early)
        return True

    def _deliver(self, token: Token, code: ReasonCode | None) -> None:
        """Tell whoever waits for this publish how the broker answered (None: QoS 0, no answer)."""
        if token is None:
            return
        if isinstance(token, int):
            if code is not None and code.is_failure:
                # The outbox row stays (only an Ack deletes it) and is re-sent later; the
                # likely cause is an ACL that does not let this device write its own topics.
                log.error("broker refused an outbox message: %s", code.getName())
            self._listener.published(self._generation, token)
            return
        if code is None or not (code.is_failure or code.value == _NO_MATCHING_SUBSCRIBERS):
            token.outcome(True, None)
        elif code.is_failure:
            token.outcome(False, f"broker refused the publish to {token.topic}: {code.getName()}")
        else:
            token.outcome(False, f"no subscriber on {token.topic}: {code.getName()}")

    # -- paho callbacks (network thread) ---------------------------------------------------

    def _status(self, state: str, reason: str | None) -> bytes:
        return encode(
            Status(
                ts=time.time(),
                site_id=self.options.site_id,
                device_id=self.options.device_id,
                state="online" if state == "online" else "offline",
                reason=reason,
                software_version=self.options.software_version,
            )
        )

    def _on_pre_connect(self, client: paho.Client, userdata: Any) -> None:
        # Rebuilt per attempt so the will's ts is this connect's time (docs/contract.md).
        client.will_set(
            self._status_topic,
            self._status("offline", "connection lost (last will)"),
            qos=1,
            retain=True,
        )

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        if reason_code.is_failure:
            # Bad credentials or a refused client id: paho retries with back-off; say why.
            log.error("broker refused the connection: %s", reason_code.getName())
            return
        # MQTT 5: never have more QoS 1 publishes unacknowledged than the broker accepts
        # (Mosquitto says 20; a stricter broker disconnects a client that exceeds it). Paho
        # cannot change its window on an open connection, so the caller keeps to `send_window`.
        receive_maximum = getattr(properties, "ReceiveMaximum", None)
        send_window = self.options.inflight
        if receive_maximum is not None:
            send_window = max(1, min(send_window, int(receive_maximum)))
        with self._lock:
            self._send_window = send_window
            # Paho would resend its in-flight copies after this callback; the outbox replays
            # them instead, in order, so drop paho's copies first.
            client.drop_out_messages()
            lost = self._acks.reset()
            self._generation += 1
            self._connected = True
            generation = self._generation
            info = client.publish(
                self._status_topic, self._status("online", None), qos=1, retain=True
            )
            self._acks.track(info.mid, None)
            self._unacked_subscribes.clear()
            for topic in self.options.subscriptions:
                _, mid = client.subscribe(topic, qos=1)
                if mid is not None:
                    self._unacked_subscribes.add(mid)
        for waiting in lost:
            waiting.outcome(
                False, f"connection lost before the broker confirmed the publish to {waiting.topic}"
            )
        log.info(
            "connected to %s:%s (session present: %s)",
            self.options.host,
            self.options.port,
            flags.session_present,
        )
        self._listener.link_up(generation)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        with self._lock:
            was_connected = self._connected
            self._connected = False
            stopping = self._stopping
        lost = self._acks.drop_waiting()
        for waiting in lost:
            waiting.outcome(
                False, f"connection lost before the broker confirmed the publish to {waiting.topic}"
            )
        if was_connected:
            if not stopping:
                log.warning("disconnected from broker: %s", reason_code.getName())
            self._listener.link_down()

    def _on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        # Called with paho's out-message lock held: never take self._lock here (publish holds
        # it while waiting for paho's lock); the acks' own small lock is never held around paho.
        found, token = self._acks.acked(mid, reason_code)
        if found:  # else the ack beat `publish` to recording the mid; `track` returns it
            self._deliver(token, reason_code)

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Any,
    ) -> None:
        if any(code.is_failure for code in reason_codes):
            # Stays unacknowledged: the node will never receive those commands (ACL?).
            log.error("broker refused a subscription: %s", reason_codes[0].getName())
            return
        with self._lock:
            self._unacked_subscribes.discard(mid)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            log.warning("dropped a message whose topic is not UTF-8")
            return
        generation = self._generation
        mid, qos = message.mid, message.qos

        def ack() -> None:
            with self._lock:
                # A PUBACK for a mid of an earlier connection could acknowledge a different
                # message on this one; the broker redelivers the old one instead.
                if qos > 0 and self._connected and generation == self._generation:
                    self._client.ack(mid, qos)

        self._listener.message(topic, bytes(message.payload), ack)
