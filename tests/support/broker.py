"""A real Mosquitto process for tests: generated config, free port, stop/kill/restart.

Two variants: anonymous, and password + ACL (every device may publish only under its own
``guanjia/v1/+/{username}/`` prefix and read only its own commands; `gateway` reads and writes
everything). Persistence is on, so a graceful stop keeps persistent sessions and queued
QoS 1 messages across a restart, as a production broker does.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

GATEWAY_USER = "gateway"


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mosquitto_binary() -> str | None:
    """Path of the mosquitto binary, looking in the Debian sbin too."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


@dataclass
class MosquittoBroker:
    """One broker process. `users` maps username → password; empty means anonymous."""

    workdir: Path
    users: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None

    @property
    def auth(self) -> bool:
        return bool(self.users)

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def _write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
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
        if os.geteuid() == 0:
            # As root Mosquitto drops to the `mosquitto` user, which cannot read pytest's
            # private tmp dirs; tests own their broker, so it stays as the caller.
            lines.append("user root")
        if self.auth:
            passwd = self.workdir / "passwd"
            passwd.write_text("")
            passwd.chmod(0o600)
            for user, password in self.users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(passwd), user, password],
                    check=True,
                    capture_output=True,
                )
            acl = self.workdir / "acl"
            acl.write_text(
                "pattern write guanjia/v1/+/%u/status\n"
                "pattern write guanjia/v1/+/%u/heartbeat\n"
                "pattern write guanjia/v1/+/%u/event\n"
                "pattern write guanjia/v1/+/%u/snapshot/+\n"
                "pattern write guanjia/v1/+/%u/telemetry\n"
                "pattern write guanjia/v1/+/%u/cmd_result\n"
                "pattern read guanjia/v1/+/%u/cmd/+\n"
                f"user {GATEWAY_USER}\n"
                "topic readwrite guanjia/#\n"
            )
            lines += ["allow_anonymous false", f"password_file {passwd}", f"acl_file {acl}"]
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
