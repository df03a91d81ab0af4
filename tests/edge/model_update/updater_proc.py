"""A process that runs only the real updater, for kill -9 tests.

    python -m tests.edge.model_update.updater_proc ROOT PUBKEY [URL SHA SIZE PROBATION_S]

Prints each report as one JSON line (and ``switching`` when the switch callback starts; the
callback takes 2 s, as reopening cameras does). With URL… it sends an install command unless
a job is already on disk; then it recovers (like a booting node) and ticks probation.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from edge.model_update.state import ModelSlot
from edge.model_update.updater import ModelUpdateArgs, ModelUpdater, Report
from guanjia.artifacts import parse_public_key


def _print(kind: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"kind": kind, **fields}) + "\n")
    sys.stdout.flush()


def _report(report: Report) -> None:
    running = None if report.running is None else report.running.version
    _print("report", state=report.state, seq=report.seq, reason=report.reason, running=running)


def _switch(slot: ModelSlot | None) -> None:
    _print("switching", to=None if slot is None else slot.version)
    time.sleep(2.0)
    _print("switched", to=None if slot is None else slot.version)


def main() -> None:
    """Run until killed."""
    root, key = Path(sys.argv[1]), parse_public_key(sys.argv[2])
    updater = ModelUpdater(root, [key], software_version="0.1.0", report=_report, switch=_switch)
    updater.recover()
    installed = updater.active_model()
    _print(
        "boot",
        running=None if installed is None else installed[0].version,
        job=None if updater.state.job is None else updater.state.job.state,
    )
    if len(sys.argv) > 3 and updater.state.job is None and updater.state.last is None:
        url, sha, size, probation = sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
        answer = updater.command(
            "cmd-kill-0001",
            ModelUpdateArgs(
                sha256=sha,
                url=url,
                size=size,
                name="yolox_nano",
                version="2.0.0",
                probation_s=float(probation),
            ),
        )
        _report(answer)
    while True:
        time.sleep(0.2)
        updater.tick()


if __name__ == "__main__":
    main()
