"""What the demo checks and finds before it starts anything: the extras, the broker, the
model, the photos, a port, a work dir. Each failure is a `DemoError` whose message says what
to install, pass or put where; nothing has been started yet."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rich.console import Console

INSTALL_MOSQUITTO = (
    "install it with `apt-get install mosquitto` (Debian, Ubuntu, Raspberry Pi OS), "
    "`dnf install mosquitto` (Fedora) or `brew install mosquitto` (macOS), or pass "
    "--mosquitto PATH"
)

BrokerChoice = Literal["auto", "mosquitto", "embedded"]


class DemoError(RuntimeError):
    """The demo cannot start or a part of it died; the message says what and how to fix it."""


def check_extras() -> None:
    """Both sides must be installed: the demo runs an edge node and a gateway."""
    import importlib.util

    needed = ("cv2", "onnxruntime", "paho", "fastapi", "uvicorn", "sqlalchemy", "amqtt", "pooch")
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise DemoError(
            f"missing Python packages {', '.join(missing)}: the demo runs both the edge node "
            "and the gateway; install them with pip install 'guanjia[edge,gateway]'"
        )


def find_mosquitto(explicit: Path | None) -> Path | None:
    """The mosquitto binary: explicit (DemoError if it is not one), else on PATH, else in
    Debian's /usr/sbin; None when there is none."""
    if explicit is not None:
        if explicit.is_file() and os.access(explicit, os.X_OK):
            return explicit
        raise DemoError(f"{explicit} is not an executable mosquitto; {INSTALL_MOSQUITTO}")
    found = shutil.which("mosquitto") or shutil.which(
        "mosquitto", path="/usr/sbin:/usr/local/sbin:/opt/homebrew/sbin"
    )
    return None if found is None else Path(found)


@dataclass(frozen=True)
class BrokerPlan:
    """Which broker the demo will run: Mosquitto (a child process) or the embedded one."""

    kind: Literal["mosquitto", "embedded"]
    mosquitto: Path | None
    why: str


def choose_broker(choice: BrokerChoice, explicit: Path | None) -> BrokerPlan:
    """`auto`: Mosquitto when its binary is found, else the embedded broker."""
    if choice == "embedded":
        return BrokerPlan("embedded", None, "--broker embedded")
    binary = find_mosquitto(explicit)
    if binary is not None:
        return BrokerPlan("mosquitto", binary, f"found {binary}")
    if choice == "mosquitto":
        raise DemoError(f"mosquitto not found; {INSTALL_MOSQUITTO}")
    return BrokerPlan("embedded", None, "no mosquitto binary found")


def find_model(explicit: Path | None, console: Console) -> tuple[Path, Path]:
    """(model dir, manifest path): `explicit`, else found or fetched by `guanjia.assets`."""
    from edge.detector import ModelError, load_manifest
    from edge.model_dir import ModelDirError, default_manifest_path, resolve_model_dir
    from guanjia.assets import AssetError, ensure_model, rich_progress

    manifest_path = default_manifest_path()
    try:
        manifest = load_manifest(manifest_path)
        if explicit is not None:
            return resolve_model_dir(explicit, weights=manifest.file), manifest_path
        report, close = rich_progress(console)
        try:
            return ensure_model(manifest.name, progress=report), manifest_path
        finally:
            close()
    except (ModelDirError, ModelError) as exc:
        raise DemoError(f"{exc} (pass --model-dir DIR or run `guanjia model fetch`)") from exc
    except AssetError as exc:
        raise DemoError(str(exc)) from exc


def find_photos(console: Console) -> Path:
    """The photos the clips are made of: found or fetched by `guanjia.assets`."""
    from guanjia.assets import AssetError, ensure_photos, rich_progress

    report, close = rich_progress(console)
    try:
        return ensure_photos(progress=report)
    except AssetError as exc:
        raise DemoError(str(exc)) from exc
    finally:
        close()


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
