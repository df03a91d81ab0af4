"""A real `guanjia gateway run` subprocess, for tests and benchmarks alike."""

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

    def wait_ready(self, timeout: float = 60.0) -> None:
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
