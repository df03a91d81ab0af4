"""One MQTT connection driven by the running asyncio loop: the gateway's only paho import.

paho-mqtt 2.x is used directly, through its public API only: ``Client(manual_ack=True)``
and ``Client.ack(mid, qos)`` acknowledge a QoS 1 message when the caller says so (aiomqtt
2.x has no public manual ack: empicano/aiomqtt#345), and paho's documented external-loop
hooks (``on_socket_register_write`` / ``on_socket_unregister_write`` / ``on_socket_close``,
``loop_read``, ``loop_write``, ``loop_misc``) put its socket on the asyncio loop, so no
thread of its own and no hand-off per message: received messages are appended to a list
in paho's ``on_message`` and the consumer is woken once per readable burst, not once per
message.

`MqttLink.open` connects (the blocking TCP connect in a thread, before any socket hook is
set, so paho writes CONNECT itself) and waits for the CONNACK; `take` hands over what has
arrived; `ack` sends the PUBACKs; `publish` returns a future resolved by the PUBACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

SESSION_NEVER_EXPIRES = 0xFFFFFFFF
"""MQTT 5 session expiry: the broker keeps the session (subscriptions, queued QoS 1
messages) however long the gateway is away; it is this replica's for good."""

MAX_INFLIGHT = 100
"""QoS 1 publishes on the wire at once; paho queues the rest until PUBACKs come back."""

MAX_PENDING = 1000
"""Publishes awaiting their PUBACK at once; beyond this the ingest waits (`room`)."""

READS_PER_WAKEUP = 100
"""Packets read in one readable callback at most (paho's `loop_read` reads one PUBLISH at a
time): enough to take a burst with one wake-up of the ingest, few enough (~5 ms of MQTT 5
decoding) that the loop's other work, the console's stream among it, is not held up."""

MISC_EVERY_S = 1.0
"""How often paho's `loop_misc` runs: keepalive pings and the keepalive timeout."""

TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
"""Linux only (elsewhere None: nothing is done). Why it is set after every read: `_quickack`."""


class LinkError(RuntimeError):
    """The connection could not be made or was lost (reconnecting may help)."""


class LinkRefusedError(LinkError):
    """The broker answered CONNECT with a refusal; `code` is its MQTT 5 reason code (paho
    maps MQTT 3.1.1 return codes onto those)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"connection refused: {text} (code {code:#x})")
        self.code = code


class LinkPublishError(RuntimeError):
    """A publish could not be handed to the broker, or the broker refused it."""


Received = tuple[str, bytes, bool, int]
"""One received message: topic, payload, retain flag, packet id (0 at QoS 0)."""


def _topic(message: paho.MQTTMessage) -> str:
    try:
        return message.topic
    except UnicodeDecodeError:  # brokers refuse these; kept visible as a dead letter
        return "invalid-utf8-topic"


class MqttLink:
    """One connected session. Every method runs on the loop that opened it."""

    def __init__(self, client: paho.Client, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop
        self._inbox: list[Received] = []
        self._packets = 0
        self._waiter: asyncio.Future[None] | None = None
        self._connack: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[str] = loop.create_future()
        """Resolved (with the reason) when the connection ends."""
        self._requests: dict[int, asyncio.Future[list[int]]] = {}
        self._inflight: dict[int, asyncio.Future[None]] = {}
        self._room = asyncio.Event()
        self._room.set()
        self._sock: socket.socket | None = None
        self._misc: asyncio.Task[None] | None = None
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_suback
        client.on_unsubscribe = self._on_unsuback
        client.on_disconnect = self._on_disconnect

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        client_id: str,
        *,
        username: str | None,
        password: str | None,
        keepalive: int,
        mqtt5: bool,
        persistent: bool = True,
        timeout_s: float = 10.0,
    ) -> MqttLink:
        """Connect and wait for the CONNACK. `persistent`: resume (or start) the session
        that never expires; False: start clean and end the session at disconnect."""
        protocol = MQTTProtocolVersion.MQTTv5 if mqtt5 else MQTTProtocolVersion.MQTTv311
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=None if mqtt5 else not persistent,
            protocol=protocol,
            reconnect_on_failure=False,
            manual_ack=True,
        )
        if username is not None:
            client.username_pw_set(username, password)
        client.max_inflight_messages_set(MAX_INFLIGHT)
        link = cls(client, asyncio.get_running_loop())
        connect: dict[str, Any] = {}
        if mqtt5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho is untyped here
            if persistent:
                properties.SessionExpiryInterval = SESSION_NEVER_EXPIRES
            connect = {"clean_start": not persistent, "properties": properties}
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.to_thread(client.connect, host, port, keepalive, **connect)
        except (OSError, TimeoutError) as exc:
            raise LinkError(f"cannot connect to {host}:{port}: {exc}") from exc
        link._attach()
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(link._connack)
        except TimeoutError:
            link.close()
            raise LinkError(f"no CONNACK from {host}:{port} within {timeout_s:.0f} s") from None
        except LinkError:
            link.close()
            raise
        return link

    def _attach(self) -> None:
        """Put the connected socket on the loop (from here on paho never writes by itself)."""
        client = self._client
        sock = client.socket()
        if not isinstance(sock, socket.socket):
            raise LinkError("paho returned no TCP socket")
        self._sock = sock
        # Acks and PUBACKs are small packets: without TCP_NODELAY, Nagle's algorithm holds
        # each behind the broker's delayed ACK (~40 ms), which bounds a batch's round trip.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.on_socket_register_write = lambda _c, _u, s: self._loop.add_writer(s, self._writable)
        client.on_socket_unregister_write = self._unregister_write
        client.on_socket_close = lambda _c, _u, s: self._detach(s)
        self._loop.add_reader(sock, self._readable)
        if client.want_write():
            self._loop.add_writer(sock, self._writable)
        self._misc = self._loop.create_task(self._keepalive(), name="mqtt-keepalive")

    def _unregister_write(self, _c: paho.Client, _u: Any, sock: Any) -> None:
        self._loop.remove_writer(sock)

    def _detach(self, sock: Any) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(sock)
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_writer(sock)
        self._sock = None

    def _readable(self) -> None:
        client = self._client
        try:
            for _ in range(READS_PER_WAKEUP):
                before = self._packets
                if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
                if self._packets == before:  # nothing (more) to read, or not a PUBLISH
                    break
        except Exception as exc:  # a broken socket surfaces here: the connection is gone
            self._ended(f"read failed: {exc}")
            self.close()
        self._quickack()
        waiter = self._waiter
        if self._inbox and waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _quickack(self) -> None:
        """TCP-acknowledge what was just read, now. Linux delays the ACKs of a connection
        that answers reads with data (our PUBACKs), but the broker's PUBACK of each Ack we
        publish gets no answer, and a broker with Nagle on (Mosquitto's default) holds every
        PUBLISH to us behind that ACK: alerts came in ~40 ms bursts (p50 23 ms to the
        console, 1.8 ms since). Not sticky (the next reply resets it): once per wake-up."""
        sock = self._sock
        if TCP_QUICKACK is None or sock is None:
            return
        with contextlib.suppress(OSError):  # a closed socket: the read path reports it
            sock.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 1)

    def _writable(self) -> None:
        try:
            self._client.loop_write()
        except Exception as exc:
            self._ended(f"write failed: {exc}")
            self.close()

    async def _keepalive(self) -> None:
        while not self.lost.done():
            await asyncio.sleep(MISC_EVERY_S)
            self._client.loop_misc()

    # paho callbacks (all on the loop thread: only `loop_read`/`loop_write`/`loop_misc` call them)

    def _on_connect(
        self, _c: paho.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Properties | None
    ) -> None:
        if self._connack.done():
            return
        if reason.is_failure:
            self._connack.set_exception(LinkRefusedError(reason.value, str(reason)))
        else:
            self._connack.set_result(None)

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        self._packets += 1
        mid = message.mid if message.qos else 0
        self._inbox.append((_topic(message), bytes(message.payload), message.retain, mid))

    def _on_publish(
        self, _c: paho.Client, _u: Any, mid: int, reason: ReasonCode, _p: Properties
    ) -> None:
        self._packets += 1
        future = self._inflight.pop(mid, None)
        if len(self._inflight) < MAX_PENDING:
            self._room.set()
        if future is None or future.done():
            return
        if reason.is_failure:
            future.set_exception(LinkPublishError(f"the broker refused it: {reason}"))
        else:
            future.set_result(None)

    def _on_suback(
        self, _c: paho.Client, _u: Any, mid: int, codes: list[ReasonCode], _p: Properties | None
    ) -> None:
        future = self._requests.pop(mid, None)
        if future is not None and not future.done():
            future.set_result([code.value for code in codes])

    def _on_unsuback(
        self, _c: paho.Client, _u: Any, mid: int, codes: list[ReasonCode], _p: Properties | None
    ) -> None:
        self._on_suback(_c, _u, mid, codes, _p)

    def _on_disconnect(
        self, _c: paho.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Properties | None
    ) -> None:
        self._ended(f"disconnected: {reason}")

    def _ended(self, why: str) -> None:
        if not self.lost.done():
            self.lost.set_result(why)
        error = LinkError(f"MQTT connection lost ({why})")
        if not self._connack.done():
            self._connack.set_exception(error)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        futures: list[asyncio.Future[Any]] = [*self._requests.values(), *self._inflight.values()]
        for future in futures:
            if not future.done():
                future.set_exception(LinkPublishError(f"connection lost ({why})"))
        self._requests.clear()
        self._inflight.clear()
        self._room.set()

    # The session's public side

    @property
    def connected(self) -> bool:
        """False once the connection ended."""
        return not self.lost.done()

    async def subscribe(self, filters: Sequence[str], *, mqtt5: bool) -> list[int]:
        """Subscribe at QoS 1; the reason code granted for each filter (>= 0x80: refused).

        MQTT 5: retain-as-published keeps the retain flag on live deliveries too, so a
        retained message is recognised whether it arrives live or at (re)subscribe; retain
        handling 1 sends retained copies only for a NEW subscription, so resuming the
        persistent session does not replay every device's retained messages again."""
        if mqtt5:
            options = SubscribeOptions(
                qos=1,
                retainAsPublished=True,
                retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB,
            )
            rc, mid = self._client.subscribe([(f, options) for f in filters])
        else:
            rc, mid = self._client.subscribe([(f, 1) for f in filters])
        return await self._request(rc, mid)

    async def unsubscribe(self, filters: Sequence[str]) -> None:
        """Drop `filters` from the session."""
        rc, mid = self._client.unsubscribe(list(filters))
        await self._request(rc, mid)

    async def _request(self, rc: MQTTErrorCode, mid: int | None) -> list[int]:
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise LinkError(f"request not sent: {paho.error_string(rc)}")
        future: asyncio.Future[list[int]] = self._loop.create_future()
        self._requests[mid] = future
        try:
            return await future
        except LinkPublishError as exc:
            raise LinkError(str(exc)) from exc

    async def wait_received(self, timeout_s: float | None) -> bool:
        """Wait until something has arrived (True) or `timeout_s` passed (False). Raises
        LinkError when the connection is lost."""
        if self._inbox:
            return True
        if self.lost.done():
            raise LinkError(f"MQTT connection lost ({self.lost.result()})")
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiter = waiter
        try:
            if timeout_s is None:
                await waiter
            else:
                await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            return False
        finally:
            self._waiter = None
        return True

    def waiting(self) -> int:
        """Messages arrived and not taken yet."""
        return len(self._inbox)

    def take(self, limit: int) -> list[Received]:
        """Hand over up to `limit` arrived messages, oldest first."""
        if len(self._inbox) <= limit:
            taken, self._inbox = self._inbox, []
        else:
            taken, self._inbox = self._inbox[:limit], self._inbox[limit:]
        return taken

    def ack(self, messages: Sequence[Received]) -> None:
        """Send the PUBACK of each QoS 1 message (after its effect is committed)."""
        ack = self._client.ack
        for message in messages:
            if message[3]:
                ack(message[3], 1)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> asyncio.Future[None]:
        """Hand a message to paho; the future resolves at its PUBACK (at once for QoS 0).
        Raises LinkPublishError when it cannot be sent (not connected)."""
        info = self._client.publish(topic, payload, qos=qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self.lost.done():
            raise LinkPublishError(paho.error_string(info.rc))
        future: asyncio.Future[None] = self._loop.create_future()
        if qos == 0:
            future.set_result(None)
            return future
        self._inflight[info.mid] = future
        if len(self._inflight) >= MAX_PENDING:
            self._room.clear()
        return future

    async def room(self) -> None:
        """Wait until fewer than `MAX_PENDING` publishes await their PUBACK."""
        await self._room.wait()

    def close(self) -> None:
        """Leave: a DISCONNECT when the socket takes it, then the socket closes."""
        if self._misc is not None:
            self._misc.cancel()
        if not self.lost.done():
            self._ended("closed")
            with contextlib.suppress(Exception):
                self._client.disconnect()
                self._client.loop_write()  # DISCONNECT written, and paho closes the socket
        sock = self._sock
        if sock is not None:
            self._detach(sock)
            sock.close()
