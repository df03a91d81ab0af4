"""CPU time of a process tree from /proc, and signals to all of it (the gateway under test
is a process with its ingest workers below it)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def _stat_cpu(pid: int) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick


def cpu_by_process(pid: int) -> dict[int, float]:
    """User + system CPU seconds of `pid` and of each of its descendants, from /proc."""
    out: dict[int, float] = {}
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            out[p] = _stat_cpu(p)
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(x) for x in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its descendants, from /proc."""
    return sum(cpu_by_process(pid).values())


def descendants(pid: int) -> list[int]:
    """`pid` and every process under it."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").iterdir():
            todo += [int(x) for x in (task / "children").read_text().split()]
    return out


def signal_all(pids: list[int], sig: signal.Signals) -> None:
    """Send `sig` to each of `pids` (those gone already are skipped)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
