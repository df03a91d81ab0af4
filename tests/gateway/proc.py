"""Real `guanjia gateway run` subprocesses and a paho publisher, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
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
        try:
            return dict(httpx.get(f"{self.url}/healthz", timeout=1).json())
        except (httpx.HTTPError, ValueError):
            return None

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
    **settings: Any,
) -> GatewayProcess:
    """Start `guanjia gateway run` with settings passed as GUANJIA_GATEWAY_* variables."""
    port = free_port()
    env = dict(os.environ)
    values: dict[str, Any] = {
        "DATABASE_URL": db_url,
        "JWT_SECRET": "multi-process-test-secret-0123456789",
        "MQTT__HOST": broker.host,
        "MQTT__PORT": broker.port,
        "MQTT__CLIENT_ID": client_id,
        "SLA_TICK_S": 0.5,
    }
    values.update({k.upper(): v for k, v in settings.items()})
    for key, value in values.items():
        env[f"GUANJIA_GATEWAY_{key}"] = value if isinstance(value, str) else json.dumps(value)
    log = workdir / f"gateway-{client_id}-{port}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "guanjia",
                "gateway",
                "run",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return GatewayProcess(process, port, log)


class Publisher:
    """A paho QoS 1 publisher that waits for every PUBACK."""

    def __init__(self, broker: MosquittoBroker, client_id: str) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
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


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last is True:
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last})")
