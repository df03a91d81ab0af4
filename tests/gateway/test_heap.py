"""`guanjia gateway run` takes its start-up heap out of the garbage collector's scans once
started (`gateway.heap`: a full collection of it stopped every thread for 100+ ms, the p99
of the 200 alerts/s latency), and an app built by `create_app` alone does not (a test
process would freeze its own heap).

Checked in a child process, whose heap is its own: it runs the app's lifespan itself, then
the real `gateway run` command with uvicorn replaced by a stand-in that runs the same
lifespan, and prints how many objects were frozen each time. No timing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import asyncio, gc, sys
import uvicorn
from gateway.config import load_settings
from gateway.main import create_app

async def started(app):
    async with app.router.lifespan_context(app):
        print("frozen", gc.get_freeze_count(), flush=True)

asyncio.run(started(create_app(load_settings(None))))
uvicorn.run = lambda app, **_options: asyncio.run(started(app))
sys.argv = ["guanjia", "gateway", "run", "--log-level", "warning"]
from guanjia.cli import main
main()
"""


def test_the_server_freezes_its_started_heap_and_a_bare_app_does_not(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "GUANJIA_GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'gw.db'}",
        "GUANJIA_GATEWAY_JWT_SECRET": "heap-test-" + "x" * 32,
        "GUANJIA_GATEWAY_INGEST_ENABLED": "false",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    counts = [int(line.split()[1]) for line in lines if line.startswith("frozen")]
    assert len(counts) == 2, done.stdout
    bare, server = counts
    assert bare == 0
    assert server > 50_000  # the modules, the app and the store: ~200,000 objects
