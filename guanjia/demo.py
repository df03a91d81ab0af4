"""`guanjia demo`: the whole system on one machine with nothing configured.

The one place that wires the demo together:

    provision (gateway DB, console users, grid + roster, broker accounts)
      ─▶ Mosquitto (private, loopback, per-device password + ACL)
      ─▶ gateway (`guanjia gateway run`, demo mode, SQLite in the work dir)
      ─▶ clips rendered from the shared photos ─▶ pretend IP cameras (MJPEG over HTTP)
      ─▶ edge node (`guanjia edge run`, generated NODE.yaml) ─▶ broker ─▶ gateway ─▶ tickets
    watch: the gateway's REST API with the operator's token, until the clips end (or
    --duration), then a table of tickets; stop every child (edge, gateway, broker) in order.

The demo is the only place where credentials are generated and printed. Every child runs in its
own process group with a parent-death signal (`guanjia.demo_children`), so Ctrl-C, SIGTERM and
even a SIGKILL of the demo leave no process behind; the temporary work dir is removed unless
``--keep``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table

from guanjia.demo_camera import CameraServer, Clip
from guanjia.demo_children import Child, Children
from guanjia.demo_client import GatewayClient, GatewayError, parse_counter

INSTALL_MOSQUITTO = (
    "the demo needs the Mosquitto MQTT broker: install it with `apt-get install mosquitto` "
    "(Debian, Ubuntu, Raspberry Pi OS), `dnf install mosquitto` (Fedora) or "
    "`brew install mosquitto` (macOS), or pass --mosquitto PATH"
)
GATEWAY_START_TIMEOUT_S = 60.0
SETTLE_S = 3.0
"""After the clips end: how long nothing new must arrive before the demo ends."""
SETTLE_MAX_S = 20.0
"""After the clips end: the longest the demo waits for the last events."""


class DemoError(RuntimeError):
    """The demo cannot start or a part of it died; the message says what and how to fix it."""


class Stopped(Exception):  # noqa: N818 - not an error: Ctrl-C or SIGTERM
    """A stop was requested while setting up."""


@dataclass(frozen=True)
class DemoOptions:
    """What `guanjia demo` was asked to do."""

    model_dir: Path | None = None
    workdir: Path | None = None
    speed: float = 1.0
    keep: bool = False
    port: int = 8080
    duration_s: float | None = None
    hold: bool = False
    mosquitto: Path | None = None


# -- preflight -------------------------------------------------------------------------------


def check_extras() -> None:
    """Both sides must be installed: the demo runs an edge node and a gateway."""
    import importlib.util

    needed = ("cv2", "onnxruntime", "paho", "fastapi", "uvicorn", "sqlalchemy")
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise DemoError(
            f"missing Python packages {', '.join(missing)}: the demo runs both the edge node "
            "and the gateway; install them with pip install 'guanjia[edge,gateway]'"
        )


def find_mosquitto(explicit: Path | None) -> Path:
    """The mosquitto binary: explicit, else on PATH, else Debian's /usr/sbin."""
    if explicit is not None:
        if explicit.is_file() and os.access(explicit, os.X_OK):
            return explicit
        raise DemoError(f"{explicit} is not an executable mosquitto; {INSTALL_MOSQUITTO}")
    found = shutil.which("mosquitto") or shutil.which(
        "mosquitto", path="/usr/sbin:/usr/local/sbin:/opt/homebrew/sbin"
    )
    if found is None:
        raise DemoError(f"mosquitto not found; {INSTALL_MOSQUITTO}")
    return Path(found)


def find_model(explicit: Path | None) -> tuple[Path, Path]:
    """(model dir, manifest path) or DemoError saying where we looked."""
    from edge.detector import ModelError, load_manifest
    from edge.model_dir import ModelDirError, default_manifest_path, resolve_model_dir

    manifest_path = default_manifest_path()
    try:
        manifest = load_manifest(manifest_path)
        return resolve_model_dir(explicit, weights=manifest.file), manifest_path
    except (ModelDirError, ModelError) as exc:
        raise DemoError(
            f"{exc} (pass --model-dir DIR or set GUANJIA_MODEL_DIR; see models/ for the weights)"
        ) from exc


def find_photos() -> Path:
    """The shared photos the clips are made of, or DemoError."""
    from guanjia.scenes import ScenesError, resolve_images_dir

    try:
        return resolve_images_dir(None)
    except ScenesError as exc:
        raise DemoError(str(exc)) from exc


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_port(requested: int) -> int:
    """The gateway's port: `requested` if it is free, any free port for 0, else DemoError."""
    if requested == 0:
        return free_port()
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", requested))
        except OSError as exc:
            raise DemoError(
                f"port {requested} is in use ({exc.strerror}): pass --port N, or --port 0 for "
                "any free port"
            ) from exc
    return requested


def make_workdir(requested: Path | None) -> tuple[Path, bool]:
    """(work dir, whether the demo created it as a temporary dir)."""
    if requested is None:
        return Path(tempfile.mkdtemp(prefix="guanjia-demo-")), True
    if requested.exists() and any(requested.iterdir()):
        raise DemoError(f"--workdir {requested} is not empty; give a new or empty directory")
    requested.mkdir(parents=True, exist_ok=True)
    return requested.resolve(), False


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Watch:
    """What the demo has seen of the gateway so far."""

    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    events: int = 0
    snapshots: int = 0
    device: dict[str, Any] | None = None
    last_change: float = field(default_factory=time.monotonic)


def _clock(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%H:%M:%S", time.localtime(ts))


def sla_deadline(ticket: dict[str, Any]) -> str:
    """The deadline that matters now: acknowledgement while new, else resolution."""
    state = ticket["state"]
    if state == "new":
        return f"ack by {_clock(ticket['ack_due_at'])}"
    if state in {"resolved", "closed"}:
        return f"resolved {_clock(ticket['resolved_at'])}"
    return f"resolve by {_clock(ticket['resolve_due_at'])}"


def tickets_table(tickets: list[dict[str, Any]]) -> Table:
    """The final table: one row per ticket."""
    table = Table(title="Tickets", title_justify="left")
    for name in ("id", "category", "zone", "state", "SLA deadline", "assignee"):
        table.add_column(name, no_wrap=True)
    for ticket in tickets:
        table.add_row(
            str(ticket["id"]),
            ticket["category"],
            ticket["zone_id"] or "-",
            ticket["state"],
            sla_deadline(ticket),
            ticket["assignee"] or "-",
        )
    return table


class Demo:
    """One demo run: set up, watch, tear down. `run()` returns the exit status."""

    def __init__(self, options: DemoOptions, console: Console) -> None:
        self.options = options
        self.console = console
        self.stop = threading.Event()
        self.children = Children()
        self.cameras: CameraServer | None = None
        self.edge: Child | None = None
        self.client: GatewayClient | None = None
        self.watch = Watch()

    # -- helpers ---------------------------------------------------------------------------

    def _check_children(self) -> None:
        for child in self.children.dead():
            raise DemoError(
                f"{child.name} exited with status {child.process.returncode}; "
                f"last lines of {child.log_path}:\n{child.log_tail()}"
            )

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            self._check_children()
            if self.stop.is_set():
                raise Stopped
            if time.monotonic() > deadline:
                raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")
            self.stop.wait(0.2)

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        def handler(signum: int, frame: FrameType | None) -> None:
            self.stop.set()

        old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, previous in old.items():
                signal.signal(sig, previous)

    # -- setup -----------------------------------------------------------------------------

    def _start_broker(self, mosquitto: Path, workdir: Path, port: int) -> Child:
        from guanjia.demo_setup import broker_config

        config = workdir / "mosquitto.conf"
        config.write_text(
            broker_config(
                port=port,
                passwd_file=workdir / "broker" / "passwd",
                acl_file=workdir / "broker" / "acl",
                as_root=os.geteuid() == 0,
            )
        )
        child = self.children.spawn(
            "mosquitto", [str(mosquitto), "-c", str(config)], workdir / "logs" / "mosquitto.log"
        )

        def listening() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return True
            except OSError:
                return False

        self._wait(listening, 10.0, f"mosquitto to listen on port {port}")
        return child

    def _start_gateway(self, workdir: Path, http: int, broker: int, password: str) -> Child:
        from guanjia.demo_setup import GATEWAY_MQTT_USER

        settings = {
            "DATABASE_URL": f"sqlite:///{workdir / 'gateway.db'}",
            "DEMO": "true",
            "MQTT__HOST": "127.0.0.1",
            "MQTT__PORT": str(broker),
            "MQTT__USERNAME": GATEWAY_MQTT_USER,
            "MQTT__PASSWORD": password,
            "MQTT__CLIENT_ID": "demo-gateway",
            "SLA_TICK_S": "1",
        }
        env_file = workdir / "gateway.env"
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.writelines(f"GUANJIA_GATEWAY_{k}={v}\n" for k, v in settings.items())
        # The user's own GUANJIA_GATEWAY_* settings would override the file: not in the demo.
        env = {k: v for k, v in os.environ.items() if not k.startswith("GUANJIA_GATEWAY_")}
        argv = [sys.executable, "-m", "guanjia", "gateway", "run", "--host", "127.0.0.1"]
        argv += ["--port", str(http), "--env-file", str(env_file), "--log-level", "warning"]
        return self.children.spawn("gateway", argv, workdir / "logs" / "gateway.log", env)

    def _start_cameras(self, workdir: Path) -> CameraServer:
        from guanjia import demo_setup

        clips = demo_setup.write_clips(workdir / "clips")
        fps = demo_setup.CLIP_FPS * self.options.speed
        self.cameras = CameraServer(
            [Clip.from_folder(cam, folder, fps) for cam, folder in clips.items()]
        )
        self.cameras.start()
        return self.cameras

    def _start_edge(
        self, workdir: Path, broker: int, password: str, model: tuple[Path, Path]
    ) -> Child:
        from guanjia import demo_setup

        assert self.cameras is not None
        speed = self.options.speed
        password_file = workdir / "edge" / "mqtt-password"
        password_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        urls = {cam: self.cameras.url(cam) for cam in self.cameras.clips}
        cameras = demo_setup.camera_configs(speed, urls)
        node = demo_setup.node_config(
            workdir=workdir,
            broker_port=broker,
            password_file=password_file,
            model_dir=model[0],
            manifest=model[1],
            cameras=cameras,
        )
        node_file = workdir / "node.yaml"
        node_file.write_text(yaml.safe_dump(node, sort_keys=False, allow_unicode=True))
        argv = [sys.executable, "-m", "guanjia", "edge", "run", "--config", str(node_file)]
        return self.children.spawn("edge node", argv, workdir / "logs" / "edge.log")

    # -- watching --------------------------------------------------------------------------

    def _poll(self) -> None:
        """One look at the gateway; print what is new."""
        from guanjia.demo_setup import DEVICE_ID

        assert self.client is not None
        try:
            tickets = self.client.tickets()
            devices = self.client.devices()
            metrics = self.client.metrics()
        except GatewayError:
            return  # a busy moment; the next poll catches up
        watch = self.watch
        events = int(parse_counter(metrics, "guanjia_ingest_messages_total", channel="event"))
        snapshots = int(parse_counter(metrics, "guanjia_ingest_messages_total", channel="snapshot"))
        if (events, snapshots) != (watch.events, watch.snapshots):
            watch.events, watch.snapshots = events, snapshots
            watch.last_change = time.monotonic()
        watch.device = next((d for d in devices if d["device_id"] == DEVICE_ID), None)
        for ticket in tickets:
            before = watch.tickets.get(ticket["id"])
            if before is None:
                self.console.print(
                    f"[bold]ticket #{ticket['id']} opened[/]: {ticket['category']} in "
                    f"{ticket['zone_id']} ({ticket['severity']}), assigned to "
                    f"{ticket['assignee'] or 'nobody'}, {sla_deadline(ticket)}"
                )
                watch.last_change = time.monotonic()
            elif before["state"] != ticket["state"]:
                self.console.print(
                    f"ticket #{ticket['id']} {ticket['category']}: {before['state']} → "
                    f"{ticket['state']}"
                    + (
                        " (the edge saw the condition clear)"
                        if ticket["condition_cleared_at"]
                        else ""
                    )
                )
                watch.last_change = time.monotonic()
            watch.tickets[ticket["id"]] = ticket

    def _status(self, started: float) -> Table:
        now = time.monotonic()
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        assert self.cameras is not None
        clips = ", ".join(
            f"{cam} {clip.progress(now):4.0%}" for cam, clip in self.cameras.clips.items()
        )
        table.add_row("elapsed", f"{now - started:5.1f} s")
        table.add_row("clips", clips)
        device = self.watch.device or {}
        health = device.get("health") or {}
        cameras = ", ".join(
            f"{c['camera_id']} {c['fps']:.1f} fps" for c in health.get("cameras", [])
        )
        table.add_row(
            "edge node",
            f"{'online' if device.get('online') else 'not yet online'}"
            + (f", {cameras}" if cameras else "")
            + f", outbox {health.get('outbox_depth', '-')}",
        )
        table.add_row("events", f"{self.watch.events} (snapshots {self.watch.snapshots})")
        by_category: dict[str, int] = {}
        for ticket in self.watch.tickets.values():
            by_category[ticket["category"]] = by_category.get(ticket["category"], 0) + 1
        table.add_row(
            "tickets", ", ".join(f"{k} {v}" for k, v in sorted(by_category.items())) or "none yet"
        )
        return table

    def _settled(self, clips_done_at: float) -> bool:
        now = time.monotonic()
        if now - clips_done_at >= SETTLE_MAX_S:
            return True
        health = (self.watch.device or {}).get("health") or {}
        return (
            now - clips_done_at >= SETTLE_S
            and now - self.watch.last_change >= SETTLE_S
            and health.get("outbox_depth") == 0
        )

    def _watch(self, edge_started: float) -> str:
        """Poll until the story is over; the reason it ended."""
        assert self.cameras is not None
        duration = self.options.duration_s
        clips_done_at: float | None = None
        with Live(
            self._status(edge_started),
            console=self.console,
            transient=True,
            refresh_per_second=4,
        ) as live:
            while True:
                self._check_children()
                self._poll()
                live.update(self._status(edge_started))
                now = time.monotonic()
                if self.stop.is_set():
                    return "stopped by a signal"
                if duration is not None and now - edge_started >= duration:
                    return f"--duration {duration:g} s reached"
                if clips_done_at is None and self.cameras.all_finished(now):
                    clips_done_at = now
                    if self.options.hold:
                        self.console.print("clips finished; holding until Ctrl-C (--hold)")
                if (
                    clips_done_at is not None
                    and not self.options.hold
                    and self._settled(clips_done_at)
                ):
                    return "the clips have finished"
                self.stop.wait(0.5)

    # -- the whole run ---------------------------------------------------------------------

    def run(self) -> int:
        """Set up, watch, tear down. 0 after a normal end or a requested stop."""
        from guanjia.demo_setup import (
            BUTLER,
            DEVICE_ID,
            GRID_ID,
            OPERATOR,
            DemoSecrets,
            provision,
        )

        opts = self.options
        check_extras()
        mosquitto = find_mosquitto(opts.mosquitto)
        model = find_model(opts.model_dir)
        find_photos()
        http = http_port(opts.port)
        workdir, temporary = make_workdir(opts.workdir)
        console = self.console
        status = 0
        with self._signals():
            try:
                console.print(f"[bold]Guanjia demo[/] — work dir {workdir}")
                secrets = DemoSecrets.generate()
                (workdir / "broker").mkdir()
                provision(
                    f"sqlite:///{workdir / 'gateway.db'}",
                    workdir / "broker" / "passwd",
                    workdir / "broker" / "acl",
                    secrets,
                    time.time(),
                )
                broker_port = free_port()
                broker = self._start_broker(mosquitto, workdir, broker_port)
                console.print(
                    f"started mosquitto (pid {broker.pid}) on mqtt://127.0.0.1:{broker_port}: "
                    f"per-device accounts, ACL in {workdir / 'broker' / 'acl'}"
                )
                gateway = self._start_gateway(
                    workdir, http, broker_port, secrets.gateway_mqtt_password
                )
                console.print(f"started gateway (pid {gateway.pid})")
                # Rendering takes a few seconds: done while the gateway starts up.
                console.print("rendering the scenario clips from the shared photos …")
                cameras = self._start_cameras(workdir)
                self.client = GatewayClient(f"http://127.0.0.1:{http}")
                client = self.client

                def gateway_ready() -> bool:
                    try:
                        return client.health().get("mqtt_connected") is True
                    except GatewayError:
                        return False

                self._wait(gateway_ready, GATEWAY_START_TIMEOUT_S, "the gateway to start")
                client.login(OPERATOR, secrets.operator_password)
                base = client.base_url
                body = json.dumps(
                    {"username": OPERATOR, "password": secrets.operator_password},
                    separators=(",", ":"),
                )
                console.print(
                    f"  console  {base}/console  (control room and butler phone view)\n"
                    f"  API      {base}/api  (OpenAPI: {base}/docs, live stream: "
                    f"{base}/api/stream)\n"
                    f"  operator {OPERATOR} / {secrets.operator_password}\n"
                    f"  butler   {BUTLER} / {secrets.butler_password}  (on duty in {GRID_ID})\n"
                    f"  login    curl -s -X POST {base}/api/login "
                    f"-H 'Content-Type: application/json' -d '{body}'",
                    highlight=False,
                    markup=False,
                )
                self.edge = self._start_edge(workdir, broker_port, secrets.device_password, model)
                edge_started = time.monotonic()
                console.print(
                    f"started edge node {DEVICE_ID} (pid {self.edge.pid}): cameras "
                    + ", ".join(cameras.url(c) for c in cameras.clips)
                    + f" at {opts.speed:g}× speed"
                )
                reason = self._watch(edge_started)
                console.print(f"ending: {reason}")
            except Stopped:
                console.print("stopping (signal received)")
            except DemoError as exc:
                console.print(f"error: {exc}", markup=False, highlight=False)
                status = 1
            finally:
                self._finish(workdir, temporary)
        return status

    def _finish(self, workdir: Path, temporary: bool) -> None:
        """Show the tickets, stop every child in order, clean up the work dir."""
        if self.client is not None and self.client.token is not None:
            with contextlib.suppress(GatewayError):
                self._poll()
                tickets = self.client.tickets()
                self.console.print(tickets_table(tickets))
                self.console.print(
                    f"{self.watch.events} event messages and {self.watch.snapshots} snapshots "
                    f"received by the gateway; {len(tickets)} tickets"
                )
        if self.edge is not None and self.watch.events == 0:
            for child in self.children.started:
                self.console.print(
                    f"no event reached the gateway; last lines of {child.log_path}:\n"
                    + child.log_tail(),
                    markup=False,
                    highlight=False,
                )
        # The edge first (its camera streams and the broker must still be there for a clean
        # goodbye), then the cameras, then gateway and broker.
        if self.edge is not None:
            self.children.stop(self.edge, timeout=20.0)
        if self.cameras is not None:
            self.cameras.close()
        killed = self.children.stop_all()
        names = ", ".join(f"{c.name} (pid {c.pid})" for c in self.children.started)
        if names:
            self.console.print(
                f"stopped {names}" + (f"; had to kill {', '.join(killed)}" if killed else "")
            )
        if temporary and not self.options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
            self.console.print(f"removed {workdir}")
        else:
            self.console.print(f"kept {workdir} (gateway.db, logs/, node.yaml, clips/)")


def run_demo(options: DemoOptions, console: Console | None = None) -> int:
    """Run the demo; raise DemoError before anything started if it cannot (no broker binary,
    no model, no photos, port taken, work dir not empty)."""
    if console is None:
        # Soft wrap: status lines (URLs, credentials, commands) stay whole, ready to copy.
        console = Console(soft_wrap=True)
        if not console.is_terminal and "COLUMNS" not in os.environ:
            # A log file or a pipe: no need to squeeze the table into 80 columns.
            console = Console(soft_wrap=True, width=120)
    return Demo(options, console).run()


__all__ = ["DemoError", "DemoOptions", "find_model", "find_mosquitto", "run_demo", "sla_deadline"]
