"""A stand-in gateway for edge tests and benchmarks: a real MQTT client that acks what it "commits".

The real gateway publishes a `contract.Ack` on ``…/{device}/ack`` after its database commit.
This double does the same with a set instead of a database: it subscribes to the devices'
``event``, ``snapshot/+`` and ``cmd_result`` of one site, "commits" each message (records its
msg_id or snapshot id) and acks it, batched like the gateway (one Ack per device per flush).

It can withhold: `withhold_first` messages (or all of them while `acking` is False) are
received and PUBACKed by the broker but neither committed nor acked, like a broker that
confirmed a message and then lost it before the gateway had it. A correct edge re-sends every
withheld message until it is acked.

    gateway = AckingGateway(broker, site_id, withhold_first=10).start()
    ...
    gateway.committed_msg_ids      # what was acked, in commit order (no repeats)
    gateway.received_msg_ids       # every copy that arrived, duplicates included
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

import contract as c
from tests.support.broker import MosquittoBroker


@dataclass
class _Pending:
    msg_ids: list[str] = field(default_factory=list)
    snapshot_ids: list[str] = field(default_factory=list)


class AckingGateway:
    """Receives one site's device messages and acks the ones it commits."""

    def __init__(
        self,
        broker: MosquittoBroker,
        site_id: str,
        *,
        withhold_first: int = 0,
        acking: bool = True,
        username: str | None = None,
        password: str | None = None,
        flush_s: float = 0.005,
    ) -> None:
        self.broker = broker
        self.site_id = site_id
        self.withhold_remaining = withhold_first
        self.acking = acking
        self.flush_s = flush_s
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._pending: dict[str, _Pending] = {}
        self._subacks = 0
        self.received_msg_ids: Counter[str] = Counter()
        self.received_snapshot_ids: Counter[str] = Counter()
        self.withheld: list[str] = []
        self.committed_msg_ids: list[str] = []
        self.committed_snapshot_ids: list[str] = []
        self.committed_kinds: dict[str, str] = {}
        self.acks_published = 0
        self._committed: set[str] = set()
        self._topics = [
            c.subscription(c.Channel.EVENT, site_id=site_id),
            c.subscription(c.Channel.SNAPSHOT, site_id=site_id),
            c.subscription(c.Channel.CMD_RESULT, site_id=site_id),
        ]
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id="gw-double-" + uuid.uuid4().hex[:10],
            clean_session=False,
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.max_inflight_messages_set(1000)
        self._client.reconnect_delay_set(1, 1)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._flusher = threading.Thread(target=self._flush_loop, name="gw-double", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> AckingGateway:
        """Connect, subscribe, and wait for the SUBACKs (so nothing published later is missed)."""
        self._client.connect(self.broker.host, self.broker.port, keepalive=5)
        self._client.loop_start()
        self._flusher.start()
        _wait(lambda: self._subacks >= len(self._topics), 10, "gateway double subscribed")
        return self

    def stop(self) -> None:
        """Flush pending acks, then disconnect."""
        with self._lock:
            self._stopping = True
        self._wake.set()
        self._flusher.join(timeout=5)
        self._client.disconnect()
        self._client.loop_stop()

    # -- what happened ---------------------------------------------------------------------

    def committed(self, key: str) -> bool:
        """True once the msg id or snapshot id `key` was committed (and its ack queued)."""
        with self._lock:
            return key in self._committed

    def committed_count(self) -> int:
        """Distinct ids committed so far."""
        with self._lock:
            return len(self._committed)

    def received_total(self) -> int:
        """Copies received so far (duplicates included)."""
        with self._lock:
            return sum(self.received_msg_ids.values()) + sum(self.received_snapshot_ids.values())

    def set_acking(self, acking: bool) -> None:
        """Start or stop committing (messages that arrive meanwhile are withheld)."""
        with self._lock:
            self.acking = acking

    # -- paho callbacks ----------------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        for topic in self._topics:
            client.subscribe(topic, qos=1)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self._lock:
            self._subacks += 1

    def _on_message(self, client, userdata, message) -> None:
        topic = c.parse_topic(message.topic)
        if topic.channel is c.Channel.SNAPSHOT:
            assert topic.name is not None
            key, is_snapshot, kind = topic.name, True, "snapshot"
        else:
            body = c.decode_for_topic(message.topic, bytes(message.payload))[1]
            assert isinstance(body, c.Message)
            key, is_snapshot, kind = body.msg_id, False, topic.channel.value
        with self._lock:
            (self.received_snapshot_ids if is_snapshot else self.received_msg_ids)[key] += 1
            if not self.acking or (self.withhold_remaining > 0 and key not in self._committed):
                if self.withhold_remaining > 0:
                    self.withhold_remaining -= 1
                self.withheld.append(key)
                return
            if key not in self._committed:
                self._committed.add(key)
                self.committed_kinds[key] = kind
                (self.committed_snapshot_ids if is_snapshot else self.committed_msg_ids).append(key)
            # A duplicate of something committed is acked again: its first ack may be lost.
            pending = self._pending.setdefault(topic.device_id, _Pending())
            (pending.snapshot_ids if is_snapshot else pending.msg_ids).append(key)
        self._wake.set()

    # -- acks ------------------------------------------------------------------------------

    def _flush_loop(self) -> None:
        while True:
            self._wake.wait(timeout=0.1)
            time.sleep(self.flush_s)  # let a batch gather, as one DB transaction would
            self._wake.clear()
            with self._lock:
                pending, self._pending = self._pending, {}
                stopping = self._stopping
            for device_id, ids in pending.items():
                self._publish_acks(device_id, ids)
            if stopping:
                return

    def _publish_acks(self, device_id: str, ids: _Pending) -> None:
        topic = str(c.ack_topic(self.site_id, device_id))
        step = c.MAX_ACK_IDS
        for start in range(0, max(len(ids.msg_ids), len(ids.snapshot_ids)), step):
            ack = c.Ack(
                ts=time.time(),
                site_id=self.site_id,
                device_id=device_id,
                msg_ids=ids.msg_ids[start : start + step],
                snapshot_ids=ids.snapshot_ids[start : start + step],
            )
            self._client.publish(topic, c.encode(ack), qos=1)
            with self._lock:
                self.acks_published += 1


def _wait(predicate: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s: {message}")
