"""Real edge nodes, a rogue client and the gateway database's figures, for system tests.

An `EdgeNode` is a `guanjia edge run` process without cameras whose outbox was seeded
before it started (through `Uplink.send_event`, the node's own path from event to outbox
rows), so the events it delivers are known in advance. A running node does not notice rows
another process adds to its outbox (its row count and "new rows" flag live in memory), so
every event is seeded before the start.
"""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

import contract as c
from edge.link_options import LinkOptions
from edge.outbox import Outbox
from edge.uplink import Uplink
from tests.gateway.factories import event, jpeg
from tests.gateway.proc import wait_for
from tests.support.broker import REPO_ROOT, MosquittoBroker

EDGE_RUN = (sys.executable, "-m", "guanjia", "edge", "run")

GATEWAY = "gateway-1"
"""The gateway replica's broker account, and so its client id."""


def password_for(user: str) -> str:
    """Each account's own password (derived from its name: test brokers only)."""
    return f"pw-{user}-{hashlib.sha256(user.encode()).hexdigest()[:16]}"


def seed_outbox(
    path: Path,
    site_id: str,
    device_id: str,
    n: int,
    *,
    snapshot_every: int = 10,
    first: int = 0,
    synchronous: Literal["full", "normal"] = "full",
) -> set[str]:
    """Put `n` start events (distinct event ids; every `snapshot_every`-th with a snapshot)
    into the outbox at `path` as the node would; return their event ids."""
    options = LinkOptions(
        host="127.0.0.1", port=1, site_id=site_id, device_id=device_id, software_version="0"
    )
    now = time.time()
    event_ids = set()
    with Outbox(path, synchronous=synchronous) as outbox:
        uplink = Uplink(options, outbox)  # never started: only its outbox path is used
        for i in range(first, first + n):
            event_id = f"ev-{device_id}-{i:05d}"
            data = ref = None
            if snapshot_every and i % snapshot_every == 0:
                data = jpeg(f"{device_id}-{i}".encode(), size=2000)
                ref = c.SnapshotRef(
                    snapshot_id=f"snap-{i:05d}-{uuid.uuid4().hex[:6]}",
                    sha256=hashlib.sha256(data).hexdigest(),
                    size_bytes=len(data),
                    width=640,
                    height=480,
                )
            message = event(site_id, device_id, event_id, zone_id=f"z{i}", ts=now, snapshot=ref)
            uplink.send_event(message, data)
            event_ids.add(event_id)
    return event_ids


def outbox_depth(path: Path) -> int:
    """Rows still in a node's outbox, read from outside the node (SQLite WAL: safe)."""
    with sqlite3.connect(path, timeout=10) as db:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])


def outbox_events(path: Path) -> int:
    """Event rows still in a node's outbox."""
    with sqlite3.connect(path, timeout=10) as db:
        return int(db.execute("SELECT count(*) FROM outbox WHERE kind = 'event'").fetchone()[0])


@dataclass
class EdgeNode:
    """One `guanjia edge run` process (no cameras) with its own broker account and outbox."""

    workdir: Path
    broker: MosquittoBroker
    site_id: str
    device_id: str
    ack_timeout_s: float = 2.0
    ack_timeout_max_s: float = 4.0
    awaiting_ack_max: int = 256
    process: subprocess.Popen[bytes] | None = None
    event_ids: set[str] = field(default_factory=set)

    @property
    def outbox_path(self) -> Path:
        return self.workdir / "outbox.db"

    @property
    def log(self) -> Path:
        return self.workdir / "edge.log"

    def seed(
        self,
        n: int,
        *,
        snapshot_every: int = 10,
        first: int = 0,
        synchronous: Literal["full", "normal"] = "full",
    ) -> None:
        """Seed `n` events numbered from `first` (the node must not be running)."""
        assert not self.alive(), "a running node does not see rows added by another process"
        self.event_ids |= seed_outbox(
            self.outbox_path,
            self.site_id,
            self.device_id,
            n,
            snapshot_every=snapshot_every,
            first=first,
            synchronous=synchronous,
        )

    def _config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        secret = self.workdir / "mqtt.password"
        secret.write_text(password_for(self.device_id) + "\n")
        secret.chmod(0o600)
        config: dict[str, Any] = {
            "site_id": self.site_id,
            "device_id": self.device_id,
            "data_dir": str(self.workdir / "state"),
            "mqtt": {
                "host": self.broker.host,
                "port": self.broker.port,
                "password_file": str(secret),
                "keepalive_s": 5,
                "reconnect_min_s": 0.2,
                "reconnect_max_s": 1,
            },
            "outbox": {
                "path": str(self.outbox_path),
                "ack_timeout_s": self.ack_timeout_s,
                "ack_timeout_max_s": self.ack_timeout_max_s,
                "awaiting_ack_max": self.awaiting_ack_max,
            },
            "heartbeat_interval_s": 5,
        }
        path = self.workdir / "node.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start(self) -> EdgeNode:
        config = self._config()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*EDGE_RUN, "--config", str(config), "--log-level", "WARNING"],
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def depth(self) -> int:
        return outbox_depth(self.outbox_path)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM and wait; the exit code (None if it never started)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class Rogue:
    """A device's real credentials plus the gateway's client id, a fresh login every
    `period` s (clean session, as an attacker would), until stopped."""

    def __init__(self, broker: MosquittoBroker, user: str, period: float = 0.2) -> None:
        self.broker = broker
        self.user = user
        self.period = period
        self.attempts = 0
        self.connacks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rogue", daemon=True)

    def start(self) -> Rogue:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            client = paho.Client(CallbackAPIVersion.VERSION2, client_id=GATEWAY)
            client.username_pw_set(self.user, password_for(self.user))
            client.on_connect = self._connected
            try:
                client.connect(self.broker.host, self.broker.port, keepalive=5)
            except OSError:  # the broker is restarting: try again next period
                self._stop.wait(self.period)
                continue
            client.loop_start()
            self.attempts += 1
            self._stop.wait(self.period)
            client.disconnect()
            client.loop_stop()

    def _connected(self, _client: paho.Client, _data: Any, _flags: Any, rc: Any, *_: Any) -> None:
        if not rc.is_failure:
            self.connacks += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass(frozen=True)
class Delivered:
    """What the gateway's database holds of the devices' events."""

    events: set[tuple[str, str]]
    """(device, event_id) pairs with a ticket_events row (each names its ticket)."""
    evidence_rows: int
    evidence_distinct: int
    """Distinct (device, event_id) among the evidence rows: < evidence_rows means an event
    was applied twice."""
    snapshots_linked: int
    """Evidence rows naming a snapshot that arrived (its data is stored)."""


def _gateway_db(db_url: str) -> sqlite3.Connection:
    return sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=10)


def committed_count(db_url: str) -> int:
    """Events committed so far (cheap; for progress-triggered faults)."""
    try:
        with _gateway_db(db_url) as db:
            return int(db.execute("SELECT count(*) FROM ticket_events").fetchone()[0])
    except sqlite3.OperationalError:  # not migrated yet
        return 0


def delivered(db_url: str) -> Delivered:
    with _gateway_db(db_url) as db:
        pairs = db.execute("SELECT device_id, event_id FROM ticket_events")
        events = {(str(device), str(event_id)) for device, event_id in pairs}
        rows, distinct = db.execute(
            "SELECT count(*), count(DISTINCT t.device_id || '/' || e.event_id)"
            " FROM evidence e JOIN tickets t ON t.id = e.ticket_id"
        ).fetchone()
        linked = db.execute(
            "SELECT count(*) FROM evidence e JOIN tickets t ON t.id = e.ticket_id"
            " JOIN snapshots s ON s.site_id = t.site_id AND s.device_id = t.device_id"
            " AND s.snapshot_id = e.snapshot_id WHERE s.data IS NOT NULL"
        ).fetchone()[0]
    return Delivered(events, int(rows), int(distinct), int(linked))


def broker_publishes(broker: MosquittoBroker, device_id: str, channel: str = "event") -> int:
    """PUBLISH packets the broker received from `device_id` on its `channel` topic (its log
    runs with ``log_type all``): more than the device's events means re-sends."""
    if not broker.log_path.exists():
        return 0
    needle = f"Received PUBLISH from {device_id} "
    suffix = f"/{device_id}/{channel}'"
    return sum(
        1
        for line in broker.log_path.read_text(errors="replace").splitlines()
        if needle in line and suffix in line
    )


def gateway_takeovers(broker: MosquittoBroker) -> int:
    """Times the broker closed the gateway's connection for a newer login with its id."""
    if not broker.log_path.exists():
        return 0
    text = broker.log_path.read_text(errors="replace")
    return text.count(f"Client {GATEWAY} already connected, closing old connection")


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> None:
    """`tests.gateway.proc.wait_for`, polling every 0.1 s by default (fault steps are short)."""
    wait_for(predicate, timeout, what, interval)


def tail(path: Path, chars: int = 2000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else f"(no {path.name})"
