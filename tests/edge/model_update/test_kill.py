"""kill -9 the real updater at each step, start it again: it runs a verified model and says so.

Steps: mid-download, after verification (testing), mid-switch, during probation. Each run is
a real process (`updater_proc`) on a real artifact served by a local HTTP server.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import pytest

from edge.model_update.state import StateFile
from guanjia.artifacts import SigningKey, sha256_file
from tests.conftest import REPO_ROOT
from tests.support.http_files import FileServer

pytestmark = pytest.mark.slow


class Proc:
    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.edge.model_update.updater_proc", *args],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []

    def until(self, kind: str, *, timeout: float = 30.0, **match: object) -> dict[str, Any]:
        for seen in self.lines:  # already read (a boot may report before it prints "boot")
            if seen["kind"] == kind and all(seen.get(k) == v for k, v in match.items()):
                return seen
        out: IO[str] | None = self.proc.stdout
        assert out is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = out.readline()
            if not line:
                raise AssertionError(f"process ended; saw {self.lines}")
            item: dict[str, Any] = json.loads(line)
            self.lines.append(item)
            if item["kind"] == kind and all(item.get(k) == v for k, v in match.items()):
                return item
        raise AssertionError(f"no {kind} {match} in {timeout} s; saw {self.lines}")

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.mark.parametrize(
    ("kill_at", "then"),
    [
        # Before the switch the job resumes and completes; after it, the known-good model.
        (("report", {"state": "downloading"}), "active"),
        (("report", {"state": "testing"}), "active"),
        (("switching", {"to": "2.0.0"}), "rolled_back"),
        (("report", {"state": "probation"}), "rolled_back"),
    ],
)
def test_kill_9_at_each_step(  # noqa: PLR0917 - pytest parameters
    tmp_path: Path,
    files: FileServer,
    real_artifact: Path,
    signing_key: SigningKey,
    kill_at: tuple[str, dict[str, Any]],
    then: str,
) -> None:
    shutil.copy(real_artifact, files.root / "a.gjm")
    if kill_at[1].get("state") == "downloading":
        files.behaviour.bytes_per_s = 1_000_000  # ~4 s: the kill lands mid-download
    root = tmp_path / "models"
    key = signing_key.public.text()
    probation = "3" if then == "active" else "600"
    args = [
        str(root),
        key,
        files.url("a.gjm"),
        sha256_file(real_artifact),
        str(real_artifact.stat().st_size),
        probation,
    ]
    first = Proc(args)
    try:
        stage, fields = kill_at
        first.until(stage, **fields)
        if kill_at[1].get("state") == "downloading":
            time.sleep(1.5)
        first.kill9()
    finally:
        first.stop()
    part = root / "downloads" / f"{sha256_file(real_artifact)}.part"
    if kill_at[1].get("state") == "downloading":
        assert 0 < part.stat().st_size < real_artifact.stat().st_size
    files.behaviour.bytes_per_s = 0
    second = Proc(args)
    try:
        boot = second.until("boot")
        # Never boots a model that has not finished probation.
        assert boot["running"] is None
        final = second.until("report", state=then)
        if then == "active":
            assert final["running"] == "2.0.0"
            if kill_at[1].get("state") == "downloading":
                assert any(r and r.startswith("bytes=") for r in files.behaviour.requests)
        else:
            assert "restarted before probation ended" in final["reason"]
            assert final["running"] is None
    finally:
        second.stop()
    state = StateFile(root).load()
    assert state.job is None
    assert (state.known_good is not None) == (then == "active")
    assert state.active == state.known_good
