"""A real console for browser tests: a `guanjia gateway run` process on a Mosquitto that
authenticates devices provisioned with `guanjia device add`, users of every role, and a
device publisher per site; plus where screenshots go."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import contract as c
from tests.gateway.apphelpers import PASSWORD, seed_users
from tests.gateway.factories import event, topic_of
from tests.gateway.imagedata import encoded
from tests.gateway.proc import GatewayProcess, Publisher, spawn_gateway, start_gateway
from tests.support.broker import MosquittoBroker
from tests.support.leaks import MARK

SITE_A = "site-1"
SITE_B = "site-2"
DEVICE_A = "cam-a1"
DEVICE_B = "cam-b1"
GATEWAY_ACCOUNT = "gw-console"
WALL = {"width": 1280, "height": 720}
PHONE = {"width": 390, "height": 844}
GATEWAY_JWT_SECRET = "multi-process-test-secret-0123456789"
"""`start_gateway`'s signing key: a restarted gateway must accept the browser's session."""
JPEG = encoded(".jpg")
STREET = Path(__file__).resolve().parents[2].parent / "shared/testdata/images/000000423617.jpg"
"""A real street photo (COCO, CC BY 2.0) as the camera's snapshot when the shared test data
is there; the tiny generated JPEG otherwise (the tests do not depend on what it shows)."""


def guanjia(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "guanjia", *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def _password(output: str) -> str:
    found = re.search(r"password \(shown once\): (\S+)", output)
    assert found, output
    return found.group(1)


def artifacts_dir(default: Path) -> Path:
    """$GUANJIA_ARTIFACTS (CI keeps it) or a pytest temp folder."""
    path = Path(os.environ.get("GUANJIA_ARTIFACTS", default)) / "console"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Console:
    """The running system the browser talks to."""

    workdir: Path
    db_url: str
    broker: MosquittoBroker
    gateway: GatewayProcess
    gateway_password: str
    devices: dict[str, tuple[str, str]]  # device → (site, password)
    settings: dict[str, Any]
    photo: bytes = JPEG
    publishers: dict[str, Publisher] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.gateway.url

    def publisher(self, device: str) -> Publisher:
        if device not in self.publishers:
            self.publishers[device] = Publisher(self.broker, device, self.devices[device][1])
        return self.publishers[device]

    def publish_alert(
        self,
        device: str,
        *,
        category: c.EventCategory = c.EventCategory.ILLEGAL_PARKING,
        severity: c.Severity = c.Severity.NORMAL,
        with_snapshot: bool = True,
    ) -> str:
        """A device's start event (and its snapshot) on the real broker; returns the zone,
        unique per call, so each call opens its own ticket."""
        site = self.devices[device][0]
        zone = "z" + uuid.uuid4().hex[:8]
        now = time.time()
        snap = None
        if with_snapshot:
            snap = c.SnapshotRef(
                snapshot_id="s" + uuid.uuid4().hex[:10],
                sha256=hashlib.sha256(self.photo).hexdigest(),
                size_bytes=len(self.photo),
                width=640,
                height=480,
            )
        message = event(
            site,
            device,
            "ev-" + uuid.uuid4().hex[:12],
            category=category,
            severity=severity,
            zone_id=zone,
            ts=now,
            snapshot=snap,
        )
        box = c.BoxEvidence(ts=now, box=(0.02, 0.52, 0.3, 0.86), score=0.87)
        message = message.model_copy(update={"boxes": [box]})
        publisher = self.publisher(device)
        publisher.send(message, topic_of(message))
        if snap is not None:
            info = publisher.client.publish(
                str(c.snapshot_topic(site, device, snap.snapshot_id)), self.photo, qos=1
            )
            publisher.pending.append(info)
        publisher.flush()
        return zone

    def restart_gateway(self) -> None:
        """Kill the gateway (no goodbye) and start a new one on the same port and database."""
        port = self.gateway.port
        self.gateway.kill()
        self.gateway = _spawn(self, port)
        self.gateway.wait_ready()

    def close(self) -> None:
        for publisher in self.publishers.values():
            publisher.close()
        self.gateway.stop()
        self.broker.stop()


def _spawn(console: Console, port: int) -> GatewayProcess:
    """The same gateway as `start_gateway` made, on a given port (the one the browser uses)."""
    values: dict[str, Any] = {
        "DATABASE_URL": console.db_url,
        "JWT_SECRET": GATEWAY_JWT_SECRET,
        "MQTT__HOST": console.broker.host,
        "MQTT__PORT": console.broker.port,
        "MQTT__USERNAME": GATEWAY_ACCOUNT,
        "MQTT__PASSWORD": console.gateway_password,
        "SLA_TICK_S": 0.5,
        **{k.upper(): v for k, v in console.settings.items()},
    }
    log = console.workdir / f"gateway-restarted-{port}.log"
    # The console (a module-scoped fixture) owns the new process and stops it in `close`,
    # so it must not carry the running test's leak mark (`tests.support.leaks`).
    env = {key: value for key, value in os.environ.items() if key != MARK}
    return spawn_gateway(env, values, log, port)


def start_console(workdir: Path, **settings: Any) -> Console:
    """Users of every role (site-1; op2 at site-2), one camera provisioned per site, the
    broker on the provisioned accounts, and the gateway."""
    db_url = f"sqlite:///{workdir / 'gateway.db'}"
    seed_users(db_url)
    passwd, acl = workdir / "passwd", workdir / "acl"
    files = ["--database-url", db_url, "--passwd-file", str(passwd), "--acl-file", str(acl)]
    devices = {}
    for device, site in ((DEVICE_A, SITE_A), (DEVICE_B, SITE_B)):
        out = guanjia("device", "add", device, "--site", site, "--kind", "camera", *files)
        devices[device] = (site, _password(out))
    gw_password = _password(guanjia("gateway", "mqtt-account", GATEWAY_ACCOUNT, *files))
    broker = MosquittoBroker(workdir / "broker", passwd_file=passwd, acl_file=acl)
    broker.start()
    values = {"STREAM_POLL_S": 0.2, **settings}
    gateway = start_gateway(
        workdir, db_url, broker, GATEWAY_ACCOUNT, password=gw_password, **values
    )
    gateway.wait_ready()
    photo = STREET.read_bytes() if STREET.is_file() else JPEG
    return Console(workdir, db_url, broker, gateway, gw_password, devices, values, photo)


__all__ = ["PASSWORD", "Console", "artifacts_dir", "start_console"]
