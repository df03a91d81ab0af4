"""`guanjia demo`: the whole system on one machine with nothing configured.

The one place that wires the demo together:

    preflight (extras, broker choice, model and photos found or fetched, port, work dir)
      ─▶ provision (gateway DB, console users, grid + roster, broker accounts)
      ─▶ broker: a private Mosquitto, else the embedded one (per-device password + ACL)
      ─▶ gateway (`guanjia gateway run`, demo mode, SQLite in the work dir)
      ─▶ clips rendered from the photos ─▶ pretend IP cameras (MJPEG over HTTP)
      ─▶ edge node (`guanjia edge run`, generated NODE.yaml) ─▶ broker ─▶ gateway ─▶ tickets
    watch (`guanjia.demo_view`): the gateway's REST API with the operator's token, until the
    clips end (or --duration), then a table of tickets; stop every child in order.

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
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import yaml
from rich.console import Console
from rich.live import Live

from guanjia import demo_sensors
from guanjia.demo_broker import RunningBroker, start_broker
from guanjia.demo_camera import CameraServer, Clip
from guanjia.demo_children import Child, Children
from guanjia.demo_client import GatewayClient, GatewayError
from guanjia.demo_preflight import (
    BrokerChoice,
    DemoError,
    check_extras,
    choose_broker,
    find_model,
    find_photos,
    free_port,
    http_port,
    make_workdir,
)
from guanjia.demo_view import Watcher, sla_deadline, tickets_table

GATEWAY_START_TIMEOUT_S = 60.0
SETTLE_S = 3.0
"""After the clips end: how long nothing new must arrive before the demo ends."""
SETTLE_MAX_S = 20.0
"""After the clips end: the longest the demo waits for the last events."""
STATUS_LINE_EVERY_S = 10.0
"""Without a terminal (a pipe, a log file) the live block is a line this often."""


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
    broker: BrokerChoice = "auto"


class Demo:
    """One demo run: set up, watch, tear down. `run()` returns the exit status."""

    def __init__(self, options: DemoOptions, console: Console) -> None:
        self.options = options
        self.console = console
        self.stop = threading.Event()
        self.children = Children()
        self.broker: RunningBroker | None = None
        self.cameras: CameraServer | None = None
        self.edge: Child | None = None
        self.client: GatewayClient | None = None
        self.watcher: Watcher | None = None
        self.sensors: demo_sensors.SensorSimulator | None = None
        self.sensor_accounts: demo_sensors.SensorAccounts | None = None

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

    def _start_gateway(self, workdir: Path, http: int, password: str) -> Child:
        from guanjia.demo_setup import GATEWAY_MQTT_USER

        assert self.broker is not None
        settings = {
            "DATABASE_URL": f"sqlite:///{workdir / 'gateway.db'}",
            "DEMO": "true",
            "MQTT__HOST": "127.0.0.1",
            "MQTT__PORT": str(self.broker.port),
            "MQTT__USERNAME": GATEWAY_MQTT_USER,
            "MQTT__PASSWORD": password,
            "MQTT__PROTOCOL": self.broker.protocol,
            "SLA_TICK_S": "1",
        }
        env_file = workdir / "gateway.env"
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.writelines(f"GUANJIA_GATEWAY_{k}={v}\n" for k, v in settings.items())
        # The user's own GUANJIA_GATEWAY_* settings would override the file: not in the demo.
        env = {k: v for k, v in os.environ.items() if not k.startswith("GUANJIA_GATEWAY_")}
        argv = [sys.executable, "-m", "guanjia", "gateway", "run", "--host", "127.0.0.1"]
        argv += ["--port", str(http), "--env-file", str(env_file)]
        # Start-up, broker and ingest lines in logs/gateway.log; not one line per API poll.
        argv += ["--log-level", "info", "--no-access-log"]
        return self.children.spawn("gateway", argv, workdir / "logs" / "gateway.log", env)

    def _start_cameras(self, workdir: Path) -> CameraServer:
        """Render the clips (from the photos `find_photos` made sure of) and serve them."""
        from guanjia import demo_setup

        clips = demo_setup.write_clips(workdir / "clips")
        fps = demo_setup.CLIP_FPS * self.options.speed
        self.cameras = CameraServer(
            [Clip.from_folder(cam, folder, fps) for cam, folder in clips.items()]
        )
        self.cameras.start()
        return self.cameras

    def _start_edge(self, workdir: Path, password: str, model: tuple[Path, Path]) -> Child:
        from guanjia import demo_setup

        assert self.cameras is not None
        assert self.broker is not None
        password_file = workdir / "edge" / "mqtt-password"
        password_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        urls = {cam: self.cameras.url(cam) for cam in self.cameras.clips}
        node = demo_setup.node_config(
            workdir=workdir,
            broker_port=self.broker.port,
            password_file=password_file,
            model_dir=model[0],
            manifest=model[1],
            cameras=demo_setup.camera_configs(self.options.speed, urls),
            protocol=self.broker.protocol,
        )
        node_file = workdir / "node.yaml"
        node_file.write_text(yaml.safe_dump(node, sort_keys=False, allow_unicode=True))
        argv = [sys.executable, "-m", "guanjia", "edge", "run", "--config", str(node_file)]
        return self.children.spawn("edge node", argv, workdir / "logs" / "edge.log")

    def _start_extras(self, workdir: Path) -> None:
        """More simulated devices (e.g. sensor nodes) start here, after the edge node; each
        shows up in the live block through /api/devices."""
        if self.broker is not None and self.sensor_accounts is not None:
            # A charging shed that overheats until its port is cut, and a smoke alarm.
            self.sensors = demo_sensors.start_for_demo(self.broker.port, self.sensor_accounts)

    # -- watching --------------------------------------------------------------------------

    def _settled(self, clips_done_at: float) -> bool:
        assert self.watcher is not None
        from guanjia.demo_setup import DEVICE_ID

        now = time.monotonic()
        if now - clips_done_at >= SETTLE_MAX_S:
            return True
        health = (self.watcher.watch.device(DEVICE_ID) or {}).get("health") or {}
        return (
            now - clips_done_at >= SETTLE_S
            and now - self.watcher.watch.last_change >= SETTLE_S
            and health.get("outbox_depth") == 0
        )

    def _watch(self, edge_started: float) -> str:
        """Poll until the story is over; the reason it ended."""
        assert self.cameras is not None
        assert self.watcher is not None
        watcher, cameras = self.watcher, self.cameras
        duration = self.options.duration_s
        clips_done_at: float | None = None
        live_terminal = self.console.is_terminal
        next_line = time.monotonic() + STATUS_LINE_EVERY_S
        with Live(
            watcher.status(cameras, edge_started),
            console=self.console,
            transient=True,
            refresh_per_second=4,
        ) as live:
            while True:
                self._check_children()
                watcher.poll()
                live.update(watcher.status(cameras, edge_started))
                now = time.monotonic()
                if not live_terminal and now >= next_line:
                    self.console.print(watcher.status_line(cameras, edge_started))
                    next_line = now + STATUS_LINE_EVERY_S
                if self.stop.is_set():
                    return "stopped by a signal"
                if duration is not None and now - edge_started >= duration:
                    return f"--duration {duration:g} s reached"
                if clips_done_at is None and cameras.all_finished(now):
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

    def _announce(self, secrets: object) -> None:
        """The URLs and the logins, once the gateway answers (the only place they are shown)."""
        from guanjia.demo_setup import BUTLER, GRID_ID, OPERATOR, DemoSecrets

        assert isinstance(secrets, DemoSecrets)
        assert self.client is not None
        base = self.client.base_url
        body = json.dumps(
            {"username": OPERATOR, "password": secrets.operator_password}, separators=(",", ":")
        )
        self.console.print(
            f"  console  {base}/console  (control room and butler phone view)\n"
            f"  API      {base}/api  (OpenAPI: {base}/docs, live stream: {base}/api/stream)\n"
            f"  operator {OPERATOR} / {secrets.operator_password}\n"
            f"  butler   {BUTLER} / {secrets.butler_password}  (on duty in {GRID_ID})\n"
            f"  login    curl -s -X POST {base}/api/login "
            f"-H 'Content-Type: application/json' -d '{body}'",
            highlight=False,
            markup=False,
        )

    def _setup(self, workdir: Path, http: int, model: tuple[Path, Path]) -> float:
        """Start broker, gateway, cameras and edge node; when the edge node started."""
        from guanjia.demo_setup import DEVICE_ID, OPERATOR, DemoSecrets, provision

        opts, console = self.options, self.console
        plan = choose_broker(opts.broker, opts.mosquitto)
        secrets = DemoSecrets.generate()
        (workdir / "broker").mkdir()
        provision(
            f"sqlite:///{workdir / 'gateway.db'}",
            workdir / "broker" / "passwd",
            workdir / "broker" / "acl",
            secrets,
            time.time(),
        )
        self.sensor_accounts = demo_sensors.provision(  # before the broker reads its files
            f"sqlite:///{workdir / 'gateway.db'}",
            workdir / "broker" / "passwd",
            workdir / "broker" / "acl",
            time.time(),
        )
        self.broker = start_broker(plan, workdir, free_port(), self.children)
        console.print(self.broker.description, highlight=False)
        gateway = self._start_gateway(workdir, http, secrets.gateway_mqtt_password)
        console.print(f"started gateway (pid {gateway.pid})")
        # Rendering takes a few seconds: done while the gateway starts up.
        console.print("rendering the scenario clips from the photos …")
        cameras = self._start_cameras(workdir)
        self.client = client = GatewayClient(f"http://127.0.0.1:{http}")

        def gateway_ready() -> bool:
            try:
                return client.health().get("mqtt_connected") is True
            except GatewayError:
                return False

        self._wait(gateway_ready, GATEWAY_START_TIMEOUT_S, "the gateway to start")
        client.login(OPERATOR, secrets.operator_password)
        self.watcher = Watcher(client, console)
        self._announce(secrets)
        self.edge = self._start_edge(workdir, secrets.device_password, model)
        edge_started = time.monotonic()
        console.print(
            f"started edge node {DEVICE_ID} (pid {self.edge.pid}): cameras "
            + ", ".join(cameras.url(c) for c in cameras.clips)
            + f" at {opts.speed:g}× speed"
        )
        self._start_extras(workdir)
        return edge_started

    def run(self) -> int:
        """Preflight, set up, watch, tear down. 0 after a normal end or a requested stop."""
        opts, console = self.options, self.console
        check_extras()
        choose_broker(opts.broker, opts.mosquitto)  # a bad --mosquitto fails before anything
        model = find_model(opts.model_dir, console)
        find_photos(console)
        http = http_port(opts.port)
        workdir, temporary = make_workdir(opts.workdir)
        status = 0
        with self._signals():
            try:
                console.print(f"[bold]Guanjia demo[/] — work dir {workdir}")
                edge_started = self._setup(workdir, http, model)
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
        watcher = self.watcher
        if self.client is not None and self.client.token is not None and watcher is not None:
            with contextlib.suppress(GatewayError):
                watcher.poll()
                tickets = self.client.tickets()
                self.console.print(tickets_table(tickets))
                self.console.print(
                    f"{watcher.watch.events} event messages and {watcher.watch.snapshots} "
                    f"snapshots received by the gateway; {len(tickets)} tickets"
                )
        if self.edge is not None and (watcher is None or watcher.watch.events == 0):
            for child in self.children.started:
                self.console.print(
                    f"no event reached the gateway; last lines of {child.log_path}:\n"
                    + child.log_tail(),
                    markup=False,
                    highlight=False,
                )
        # The edge first (its camera streams and the broker must still be there for a clean
        # goodbye), then the cameras, then gateway and broker.
        if self.sensors is not None:
            self.sensors.stop()
        if self.edge is not None:
            self.children.stop(self.edge, timeout=20.0)
        if self.cameras is not None:
            self.cameras.close()
        killed = self.children.stop_all()
        if self.broker is not None:
            self.broker.stop()
        names = ", ".join(f"{c.name} (pid {c.pid})" for c in self.children.started)
        if self.broker is not None and self.broker.embedded is not None:
            names += (", " if names else "") + "the embedded broker"
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
    """Run the demo; raise DemoError before anything started if it cannot (a bad broker
    binary, no model or photos and no way to fetch them, port taken, work dir not empty)."""
    if console is None:
        # Soft wrap: status lines (URLs, credentials, commands) stay whole, ready to copy.
        console = Console(soft_wrap=True)
    return Demo(options, console).run()


__all__ = ["DemoError", "DemoOptions", "run_demo", "sla_deadline"]
