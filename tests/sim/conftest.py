"""A simulated site on a real broker and a real gateway process: `guanjia sim provision`
writes the database, the broker's password file and ACL; Mosquitto runs on them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.proc import GatewayProcess, spawn_gateway
from tests.support.broker import SHIPPED_MOSQUITTO_CONF, MosquittoBroker, free_port


def guanjia(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real CLI."""
    return subprocess.run(
        [sys.executable, "-m", "guanjia", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class SimSite:
    """Provisioned accounts, a broker on them, and a way to start gateways."""

    workdir: Path
    db_url: str
    broker: MosquittoBroker
    credentials: Path
    gateways: list[GatewayProcess]

    def creds(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.credentials.read_text())
        return data

    def start_gateway(self, username: str, **settings: Any) -> GatewayProcess:
        values: dict[str, Any] = {
            "DATABASE_URL": self.db_url,
            "JWT_SECRET": "sim-test-secret-0123456789abcdef0123",
            "MQTT__HOST": self.broker.host,
            "MQTT__PORT": self.broker.port,
            "MQTT__USERNAME": username,
            "MQTT__PASSWORD": self.creds()["gateways"][username],
            "MQTT__TELEMETRY_SESSION": False,
            "TELEMETRY__PATH": str(self.workdir / f"{username}.telemetry.db"),
        }
        values.update({k.upper(): v for k, v in settings.items()})
        port = free_port()
        gateway = spawn_gateway(
            dict(os.environ), values, self.workdir / f"{username}-{port}.log", port
        )
        self.gateways.append(gateway)
        return gateway

    def run_sim(self, *args: str, timeout: float = 300) -> tuple[int, dict[str, Any], str]:
        """`guanjia sim run` against this site: (exit code, JSON summary, output)."""
        out = self.workdir / f"sim-{len(list(self.workdir.glob('sim-*.json')))}.json"
        done = guanjia(
            "sim",
            "run",
            "--credentials",
            str(self.credentials),
            "--host",
            self.broker.host,
            "--port",
            str(self.broker.port),
            "--json",
            str(out),
            *args,
            timeout=timeout,
        )
        report = json.loads(out.read_text()) if out.exists() else {}
        return done.returncode, report, done.stdout + done.stderr


@pytest.fixture
def sim_site_factory(mosquitto_available: None, tmp_path: Path) -> Iterator[Callable[..., SimSite]]:
    """Provision a simulated site (CLI) into `db_url`, start Mosquitto on its files."""
    made: list[SimSite] = []

    def make(
        db_url: str, *provision_args: str, gateways: tuple[str, ...] = ("gateway-1",)
    ) -> SimSite:
        workdir = tmp_path / f"site-{len(made)}"
        workdir.mkdir()
        creds = workdir / "creds.json"
        passwd, acl = workdir / "passwd", workdir / "acl"
        args = [
            "sim",
            "provision",
            "--credentials",
            str(creds),
            "--passwd-file",
            str(passwd),
            "--acl-file",
            str(acl),
            "--database-url",
            db_url,
            "--api-user",
            "sim-operator",
            *provision_args,
        ]
        for name in gateways:
            args += ["--gateway-account", name]
        done = guanjia(*args)
        assert done.returncode == 0, done.stderr
        broker = MosquittoBroker(
            workdir / "broker",
            passwd_file=passwd,
            acl_file=acl,
            shipped_config=SHIPPED_MOSQUITTO_CONF,
        )
        broker.start()
        site = SimSite(workdir, db_url, broker, creds, [])
        made.append(site)
        return site

    yield make
    for site in made:
        for gateway in site.gateways:
            gateway.stop()
        site.broker.kill()
