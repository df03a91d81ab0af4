"""Real `guanjia gateway run` subprocesses and a paho publisher, for end-to-end tests."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

import contract as c
from tests.support.broker import MosquittoBroker

# The gateway process itself lives in tests.support (benchmarks start it too); re-exported
# for the tests that import it from here.
from tests.support.gateway_process import GatewayProcess, spawn_gateway, start_gateway

__all__ = [
    "AckListener",
    "GatewayProcess",
    "Publisher",
    "SqliteWriteLock",
    "spawn_gateway",
    "start_gateway",
    "wait_for",
]


class Publisher:
    """A paho QoS 1 publisher that waits for every PUBACK and never re-sends (like a stock
    ESPHome node): what the broker acknowledged is gone from its side."""

    def __init__(
        self, broker: MosquittoBroker, client_id: str, password: str | None = None
    ) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if password is not None:
            self.client.username_pw_set(client_id, password)
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.pending: list[paho.MQTTMessageInfo] = []

    def send(self, message: c.Message, topic: str) -> None:
        self.pending.append(self.client.publish(topic, c.encode(message), qos=1))

    def flush(self, timeout: float = 60.0) -> None:
        for info in self.pending:
            info.wait_for_publish(timeout=timeout)
            assert info.is_published()
        self.pending.clear()

    def close(self) -> None:
        self.flush()
        self.client.loop_stop()
        self.client.disconnect()


class AckListener:
    """A device's view of its …/ack topic: every Ack received, and whether the gateway's
    database already held the message when the Ack arrived (`check(msg_id)`, run then)."""

    def __init__(
        self,
        broker: MosquittoBroker,
        site_id: str,
        device_id: str,
        check: Any = None,
        password: str | None = None,
    ) -> None:
        self.acks: list[dict[str, Any]] = []
        self.committed_at_arrival: list[bool] = []
        self._check = check
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{device_id}-acks" if password is None else device_id,
        )
        if password is not None:
            self.client.username_pw_set(device_id, password)
        topic = str(c.ack_topic(site_id, device_id))
        self.subscribed = False

        def on_connect(client: paho.Client, *_args: Any) -> None:
            client.subscribe(topic, qos=1)

        def on_subscribe(*_args: Any) -> None:
            self.subscribed = True

        def on_message(_client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
            ack = json.loads(message.payload)
            if self._check is not None:
                self.committed_at_arrival += [self._check(m) for m in ack["msg_ids"]]
            self.acks.append(ack)

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        wait_for(lambda: self.subscribed, 10, "the ack subscription")

    def msg_ids(self) -> set[str]:
        return {m for ack in self.acks for m in ack["msg_ids"]}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class SqliteWriteLock:
    """Holds SQLite's write lock (BEGIN IMMEDIATE) until released: the gateway can read but
    not commit, so what it receives stays delivered and uncommitted."""

    def __init__(self, db_url: str) -> None:
        self.conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last is True:
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last})")
