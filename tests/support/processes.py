"""What a test that starts the demo (or the first command) checks about the processes it left.

`guanjia demo` and `scripts/demo` print one ``started <name> … (pid N)`` line per child; the
tests read those pids back and then require every child, and anything else that mentions the
demo's work dir, to be gone.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

PID_LINE = re.compile(r"started (mosquitto|gateway|edge node) .*?\(pid (\d+)\)")


def child_pids(output: str) -> dict[str, int]:
    """The children the demo said it started, by name."""
    return {name: int(pid) for name, pid in PID_LINE.findall(output)}


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (a demo's work dir)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and alive(int(proc.name)):
            found.append(f"{proc.name}: {cmdline}")
    return found
