"""The demo's child processes: start them in their own process group, stop them all, in order.

Each child gets its own session (so a Ctrl-C in the terminal reaches only the demo, which then
stops the children in the right order: edge node, gateway, broker) and, on Linux, a parent-death
signal: if the demo itself is killed with SIGKILL, the kernel sends every child SIGTERM, so a
crashed demo leaves no broker or gateway running behind it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook asking the kernel to SIGTERM the child when the demo dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    # Looked up here, in the parent: the hook runs between fork and exec, where it must not
    # import or allocate anything.
    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))

    return hook


@dataclass
class Child:
    """One started process and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """Its process id."""
        return self.process.pid

    def running(self) -> bool:
        """True while the process has not exited."""
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of its log, for an error message."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Children:
    """Every process the demo started; `stop_all` stops them newest first."""

    started: list[Child] = field(default_factory=list)

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> Child:
        """Start `argv` with stdout and stderr appended to `log_path`."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                start_new_session=True,
                # Safe enough here: the hook makes one prctl(2) call through a function looked
                # up before the fork (glibc keeps malloc usable in a forked child).
                preexec_fn=_parent_death_signal(),  # noqa: PLW1509
            )
        child = Child(name, process, log_path)
        self.started.append(child)
        log.info("started %s (pid %d)", name, process.pid)
        return child

    def dead(self) -> list[Child]:
        """Children that exited on their own."""
        return [child for child in self.started if not child.running()]

    def stop(self, child: Child, timeout: float) -> bool:
        """SIGTERM, wait up to `timeout`, then SIGKILL. True if it stopped on SIGTERM."""
        if not child.running():
            return True
        child.process.send_signal(signal.SIGTERM)
        try:
            child.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s: killing it", child.name, timeout)
            child.process.kill()
            child.process.wait()
            return False
        return True

    def stop_all(self, timeout: float = 15.0) -> list[str]:
        """Stop every child, newest first; the names of those that had to be killed."""
        killed = [child.name for child in reversed(self.started) if not self.stop(child, timeout)]
        # Reap anything still around (a child that exited on its own is a zombie until waited).
        for child in self.started:
            if child.running():
                os.kill(child.pid, signal.SIGKILL)
            child.process.wait()
        return killed
