"""One simulated device's MQTT connection (paho): publish, count PUBACKs, take the gateway's
Acks, re-send what no Ack named.

Like an edge node (`edge.delivery`), a simulated camera or sensor node keeps every event,
snapshot and TelemetryBatch until an end-to-end Ack from the gateway names it, and re-sends
the stored bytes (same msg_id) when none did within `ack_timeout_s` (doubling per attempt,
up to `max_ack_timeout_s`). It connects with a persistent session (clean_start off), so
Acks published while it reconnects wait for it at the broker. An ESPHome node, like the
stock firmware, publishes its states and never re-sends.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from contract import Ack, ContractError, Status, ack_topic, decode, encode, status_topic
from gateway.telemetry.esphome import prefix as esphome_prefix
from guanjia.sim.stats import SimStats
from guanjia.sim.wire import SOFTWARE_VERSION, Outgoing


@dataclass
class _Pending:
    out: Outgoing
    kind: str
    first_sent: float
    last_sent: float
    attempts: int


@dataclass(frozen=True)
class Endpoint:
    """Where the broker is."""

    host: str
    port: int


class SimDevice:
    """A device's own broker session (username and client id = its device id)."""

    def __init__(
        self,
        endpoint: Endpoint,
        site_id: str,
        device_id: str,
        password: str,
        *,
        esphome: bool,
        stats: SimStats,
        ack_timeout_s: float = 10.0,
        max_ack_timeout_s: float = 60.0,
    ) -> None:
        self.site_id = site_id
        self.device_id = device_id
        self.esphome = esphome
        self.stats = stats
        self.ack_timeout_s = ack_timeout_s
        self.max_ack_timeout_s = max_ack_timeout_s
        self.connected = threading.Event()
        self.refused: str | None = None
        # Never held while calling into paho: paho calls on_publish holding its own
        # message lock, so a publish under ours would deadlock against it.
        self._lock = threading.Lock()
        self._mid_lock = threading.Lock()
        self._in_flight: dict[int, tuple[str, float]] = {}  # mid -> (kind, sent at)
        self._early: set[int] = set()  # PUBACKed before publish() returned its mid
        self._pending: dict[str, _Pending] = {}  # ack key -> what awaits its Ack
        self._endpoint = endpoint
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=device_id,
            protocol=MQTTProtocolVersion.MQTTv311,
            clean_session=esphome,  # a stock ESPHome node keeps no session
        )
        client.username_pw_set(device_id, password)
        client.max_inflight_messages_set(64)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(1, 5)
        if esphome:
            will_topic = f"{esphome_prefix(site_id, device_id)}/status"
            client.will_set(will_topic, b"offline", qos=1, retain=True)
        else:
            offline = Status(ts=time.time(), site_id=site_id, device_id=device_id, state="offline")
            client.will_set(
                str(status_topic(site_id, device_id)), encode(offline), qos=1, retain=True
            )
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self.client = client

    def start(self) -> None:
        """Connect in the background (paho's network thread)."""
        self.client.connect_async(self._endpoint.host, self._endpoint.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho callbacks (network thread) --------------------------------------------------

    def _on_connect(
        self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            self.refused = str(reason)
            return
        if self.esphome:
            status = f"{esphome_prefix(self.site_id, self.device_id)}/status"
            client.publish(status, b"online", qos=1, retain=True)
        else:
            client.subscribe(str(ack_topic(self.site_id, self.device_id)), qos=1)
            online = Status(
                ts=time.time(),
                site_id=self.site_id,
                device_id=self.device_id,
                state="online",
                software_version=SOFTWARE_VERSION,
            )
            topic = str(status_topic(self.site_id, self.device_id))
            client.publish(topic, encode(online), qos=1, retain=True)
        self.connected.set()
        # Everything not yet acked goes again on a new connection, as an edge node replays.
        with self._lock:
            due = list(self._pending.values())
        for pending in due:
            self._resend(pending, time.monotonic())

    def _on_publish(
        self, _client: paho.Client, _userdata: Any, mid: int, _reason: Any, _props: Any
    ) -> None:
        with self._mid_lock:
            entry = self._in_flight.pop(mid, None)
            if entry is None:
                self._early.add(mid)
        if entry is not None and entry[0]:
            kind, sent_at = entry
            self.stats.broker_acked(kind, time.monotonic() - sent_at)

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            ack = decode(Ack, bytes(message.payload))
        except ContractError:
            return
        assert isinstance(ack, Ack)  # decode's type is the constrained Message, not Ack
        if (ack.site_id, ack.device_id) != (self.site_id, self.device_id):
            return
        now = time.monotonic()
        with self._lock:
            done = [
                self._pending.pop(key)
                for key in [*ack.msg_ids, *ack.snapshot_ids]
                if key in self._pending
            ]
        for pending in done:
            self.stats.gateway_acked(pending.kind, now - pending.first_sent)

    # -- the scheduler's side ---------------------------------------------------------------

    def _publish(self, out: Outgoing, kind: str) -> None:
        sent_at = time.monotonic()
        info = self.client.publish(out.topic, out.payload, qos=out.qos)
        # paho reports QoS 0 sends through on_publish too (no PUBACK): tracked but not counted.
        kind = kind if out.qos > 0 else ""
        with self._mid_lock:
            early = info.mid in self._early
            if early:
                self._early.discard(info.mid)
            else:
                self._in_flight[info.mid] = (kind, sent_at)
        if early and kind:
            self.stats.broker_acked(kind, time.monotonic() - sent_at)

    def send(self, out: Outgoing, kind: str) -> None:
        """Publish one message; keep it until an Ack names it (when it has a key)."""
        now = time.monotonic()
        if out.ack_key is not None:
            with self._lock:
                self._pending[out.ack_key] = _Pending(out, kind, now, now, 1)
        self._publish(out, kind)
        self.stats.sent(kind)

    def _resend(self, pending: _Pending, now: float) -> None:
        with self._lock:
            if pending.out.ack_key not in self._pending:
                return
            pending.attempts += 1
            pending.last_sent = now
        self._publish(pending.out, pending.kind)
        self.stats.sent(pending.kind, resend=True)

    def resend_overdue(self, now: float) -> int:
        """Re-send every message whose Ack is overdue; returns how many."""
        with self._lock:
            due = [
                p
                for p in self._pending.values()
                if now - p.last_sent
                >= min(self.max_ack_timeout_s, self.ack_timeout_s * 2 ** (p.attempts - 1))
            ]
        if not self.client.is_connected():
            return 0
        for pending in due:
            self._resend(pending, now)
        return len(due)

    def pending_keys(self) -> list[str]:
        """Ack keys still awaiting an Ack."""
        with self._lock:
            return list(self._pending)

    def pending_by_kind(self) -> dict[str, int]:
        """Count of unacked messages per kind."""
        with self._lock:
            out: dict[str, int] = {}
            for p in self._pending.values():
                out[p.kind] = out.get(p.kind, 0) + 1
            return out
