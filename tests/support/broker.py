"""A real Mosquitto process for tests: generated config, free port, stop/kill/restart.

Two variants: anonymous, and password + ACL. The second runs on exactly what we ship: the
password file and ACL come from `gateway.provisioning` (each device pinned under
``guanjia/v1/{site}/{its id}/``; gateway accounts read the device channels and write
commands and acks), and ``use_username_as_clientid`` is on, as in every broker config we
ship. Persistence is on, so a graceful stop keeps persistent sessions and queued QoS 1
messages across a restart, as a production broker does.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

GATEWAY_USER = "gateway"
"""The gateway account of the shared auth broker (more replicas: `MosquittoBroker.gateways`)."""


def _port_range() -> range:
    """This process's share of the ports below the kernel's ephemeral range.

    A port from `free_port` is free only until its server binds it, which for a gateway
    subprocess is a second or more later. Ports from below the ephemeral range are never
    taken meanwhile by an outgoing connection, and each pytest-xdist worker has a share of its
    own, so another worker cannot be handed the same port either.
    """
    low, count = 10000, 1
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    if worker:
        count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1), index + 1)
    share = (ephemeral - low) // count
    return range(low + index * share, low + (index + 1) * share)


_ports = _port_range()
_next_port = [random.randrange(len(_ports))] if len(_ports) >= 100 else []
"""Where `free_port` looks next: it walks its share, from a random start (another run on the
machine starts elsewhere), so it hands out no port twice in a row."""


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1 (and that this process has not
    handed out recently)."""
    if not _next_port:  # no usable range below the ephemeral ports: any the kernel picks
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    for _ in range(len(_ports)):
        port = _ports[_next_port[0]]
        _next_port[0] = (_next_port[0] + 1) % len(_ports)
        with socket.socket() as sock:
            try:
                # No SO_REUSEADDR: a port with a connection still in TIME_WAIT is passed over.
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_ports}")


def mosquitto_binary() -> str | None:
    """Path of the mosquitto binary, looking in the Debian sbin too."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


_LOCAL_KEYS = frozenset(
    {"listener", "password_file", "acl_file", "persistence_location", "log_dest", "log_type"}
    | {"certfile", "keyfile", "user"}
)
"""Lines of a shipped config that name the site's paths, ports and logging, not policy."""

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
SHIPPED_MOSQUITTO_CONF = REPO_ROOT / "docker" / "mosquitto" / "mosquitto.conf"


@dataclass
class MosquittoBroker:
    """One broker process. `users` maps username → password; empty means anonymous (unless
    `passwd_file` and `acl_file` name files provisioned elsewhere, e.g. by the CLI). Users
    named in `gateways` get the gateway role; the others are devices of `site_id` (or of
    `device_sites[user]`), with `grants[user]` as extra writable topics."""

    workdir: Path
    users: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None
    site_id: str = "site"
    gateways: frozenset[str] = frozenset({GATEWAY_USER})
    device_sites: dict[str, str] = field(default_factory=dict)
    grants: dict[str, tuple[str, ...]] = field(default_factory=dict)
    passwd_file: Path | None = None
    acl_file: Path | None = None
    max_inflight: int | None = None
    """Mosquitto's `max_inflight_messages` (unacknowledged QoS 1 messages per client; for
    MQTT 5 clients also the Receive Maximum it announces); None: Mosquitto's default, 20.
    The shipped config sets 100 (docker/mosquitto/mosquitto.conf)."""
    shipped_config: Path | None = None
    """Run on this shipped mosquitto.conf (security, persistence, queues as written), with
    only its site-specific lines (listener, file locations, logging) replaced."""

    @property
    def auth(self) -> bool:
        return bool(self.users) or self.passwd_file is not None

    def _provision(self) -> tuple[Path, Path]:
        """The shipped password file and ACL for `users` (hashed once per broker)."""
        from gateway.provisioning import BrokerAccount, mosquitto_hash, write_broker_files

        if self.passwd_file is not None and self.acl_file is not None:
            return self.passwd_file, self.acl_file
        passwd, acl = self.workdir / "passwd", self.workdir / "acl"
        if not passwd.exists():
            accounts = [
                BrokerAccount(
                    user,
                    mosquitto_hash(password),
                    "gateway" if user in self.gateways else "device",
                    None if user in self.gateways else self.device_sites.get(user, self.site_id),
                    **({"grants": self.grants[user]} if user in self.grants else {}),
                )
                for user, password in self.users.items()
            ]
            write_broker_files(accounts, passwd, acl)
        return passwd, acl

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def _shipped_lines(self) -> list[str]:
        assert self.shipped_config is not None
        passwd, acl = self._provision()
        kept = []
        for raw in self.shipped_config.read_text().splitlines():
            line = raw.strip()
            if line and not line.startswith("#") and line.split()[0] not in _LOCAL_KEYS:
                kept.append(line)
        return [
            f"listener {self.port} {self.host}",
            *kept,
            f"password_file {passwd}",
            f"acl_file {acl}",
            f"persistence_location {self.workdir}/",
            f"log_dest file {self.log_path}",
            "log_type all",
        ]

    def _write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.shipped_config is not None:
            lines = self._shipped_lines()
            if os.geteuid() == 0:
                lines.append("user root")  # see below
            config = self.workdir / "mosquitto.conf"
            config.write_text("\n".join(lines) + "\n")
            return config
        lines = [
            f"listener {self.port} {self.host}",
            "persistence true",
            f"persistence_location {self.workdir}/",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            # Production brokers raise these too: a gateway outage must not drop queued QoS 1.
            "max_queued_messages 200000",
            "max_queued_bytes 0",
        ]
        if self.max_inflight is not None:
            lines.append(f"max_inflight_messages {self.max_inflight}")
        if os.geteuid() == 0:
            # As root Mosquitto drops to the `mosquitto` user, which cannot read pytest's
            # private tmp dirs; tests own their broker, so it stays as the caller.
            lines.append("user root")
        if self.auth:
            passwd, acl = self._provision()
            lines += [
                "allow_anonymous false",
                f"password_file {passwd}",
                f"acl_file {acl}",
                # As in every broker config we ship: no login can take another's session.
                "use_username_as_clientid true",
            ]
        else:
            lines.append("allow_anonymous true")
        config = self.workdir / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self, timeout: float = 10.0) -> None:
        """Start (or restart) on the same port and wait until it accepts connections."""
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto binary not found")
        config = self._write_config()
        with (self.workdir / "stderr.log").open("ab") as stderr:
            self.process = subprocess.Popen(
                [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=stderr
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (self.workdir / "stderr.log").read_text(errors="replace")
                raise RuntimeError(f"mosquitto exited at start: {err}\n{self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}\n{self.log_tail()}")

    def stop(self) -> None:
        """Graceful stop (SIGTERM): persistent sessions are saved to disk."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: nothing saved since the last autosave."""
        self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, sig)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        """Graceful stop, then start on the same port."""
        self.stop()
        self.start()

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no mosquitto log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
