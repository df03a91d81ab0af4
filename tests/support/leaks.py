"""Find the processes a test left running.

Each test runs with its own value of `MARK` in ``os.environ``; every process started while it
runs (brokers, gateways, `guanjia … run`, their children, orphans too) inherits it. What
still carries the value after the test's fixtures are torn down was leaked: it would hold a
port, a database file or CPU while later tests run, and under pytest-xdist a live child of a
worker can keep that worker from ever finishing. Processes started by session- or
module-scoped fixtures are set up before the test's value is set, so they never count.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

MARK = "GUANJIA_TEST_LEAK_MARK"


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def marked(value: str) -> dict[int, str]:
    """Live processes whose environment holds ``MARK=value``: pid → command line."""
    needle = f"{MARK}={value}".encode() + b"\0"
    found: dict[int, str] = {}
    me = os.getpid()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == me:
            continue
        try:
            if needle not in (proc / "environ").read_bytes():
                continue
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if _alive(int(proc.name)):
            found[int(proc.name)] = cmdline.strip()
    return found


def _reap(pid: int) -> None:
    """Collect our own dead child, so no zombie stays (a Popen polling it later gets ECHILD
    and counts it as finished)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def kill_leaked(value: str, grace: float = 5.0) -> dict[int, str]:
    """Wait up to `grace` seconds for the processes marked `value` to end on their own (one
    that was just sent SIGTERM may still be exiting), SIGKILL those left, and return them."""
    deadline = time.monotonic() + grace
    left = marked(value)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        for pid in left:
            _reap(pid)
        left = marked(value)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for pid in left:
            _reap(pid)
        if not any(_alive(pid) for pid in left):
            break
        time.sleep(0.05)
    return left
