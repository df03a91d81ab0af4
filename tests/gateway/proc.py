"""Real `guanjia gateway run` subprocesses and a paho publisher, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

import contract as c
from tests.support.broker import MosquittoBroker, free_port


@dataclass
class GatewayProcess:
    """One gateway process; `kill()` is SIGKILL (no goodbye, no flush)."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self) -> dict[str, Any] | None:
        """The /healthz body plus its HTTP status as `http_status`; None if unreachable."""
        try:
            response = httpx.get(f"{self.url}/healthz", timeout=1)
            return {**response.json(), "http_status": response.status_code}
        except (httpx.HTTPError, ValueError):
            return None

    def pause(self) -> None:
        """SIGSTOP: the process holds whatever it has, answering nothing."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited:\n{self.log.read_text()[-3000:]}")
            health = self.health()
            if health and health.get("mqtt_connected"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"gateway not ready:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=5).text


def start_gateway(
    workdir: Path,
    db_url: str,
    broker: MosquittoBroker,
    client_id: str,
    *,
    password: str | None = None,
    **settings: Any,
) -> GatewayProcess:
    """Start `guanjia gateway run` with settings passed as GUANJIA_GATEWAY_* variables.

    With a `password`, `client_id` is the replica's broker username (its client id follows);
    without, it is the session id on an anonymous broker.
    """
    port = free_port()
    env = dict(os.environ)
    identity: dict[str, Any] = (
        {"MQTT__USERNAME": client_id, "MQTT__PASSWORD": password}
        if password is not None
        else {"MQTT__CLIENT_ID": client_id}
    )
    values: dict[str, Any] = {
        "DATABASE_URL": db_url,
        "JWT_SECRET": "multi-process-test-secret-0123456789",
        "MQTT__HOST": broker.host,
        "MQTT__PORT": broker.port,
        **identity,
        "SLA_TICK_S": 0.5,
    }
    values.update({k.upper(): v for k, v in settings.items()})
    return spawn_gateway(env, values, workdir / f"gateway-{client_id}-{port}.log", port)


def spawn_gateway(
    env: dict[str, str], values: dict[str, Any], log: Path, port: int, log_level: str = "warning"
) -> GatewayProcess:
    """`guanjia gateway run --port PORT` with `values` as GUANJIA_GATEWAY_* variables
    (non-strings JSON-encoded) on top of `env`, its output appended to `log`."""
    env = dict(env)
    for key, value in values.items():
        env[f"GUANJIA_GATEWAY_{key}"] = value if isinstance(value, str) else json.dumps(value)
    command = [sys.executable, "-m", "guanjia", "gateway", "run", "--port", str(port)]
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*command, "--log-level", log_level], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    return GatewayProcess(process, port, log)


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
