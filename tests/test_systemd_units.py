"""The shipped systemd units pass `systemd-analyze verify` (their ExecStart pointed at this
checkout's `guanjia`, which a Pi has under /opt/guanjia/venv) and run the real command."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import missing

DOCKER = Path(__file__).resolve().parent.parent / "docker"
UNITS = sorted(DOCKER.rglob("*.service"))
INSTALLED = "/opt/guanjia/venv/bin/guanjia"


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        missing("systemd-analyze")
    assert found is not None
    return found


def _local_copy(unit: Path, tmp_path: Path) -> Path:
    guanjia = Path(sys.executable).parent / "guanjia"
    assert guanjia.exists()
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace(INSTALLED, str(guanjia)))
    return copy


def test_units_are_shipped() -> None:
    assert {u.name for u in UNITS} >= {"guanjia-gateway.service", "guanjia-edge.service"}


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_verifies(unit: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [_systemd_analyze(), "verify", str(_local_copy(unit, tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # unknown keys are only warnings


def test_verify_can_fail(tmp_path: Path) -> None:
    unit = tmp_path / "broken.service"
    text = (DOCKER / "gateway" / "guanjia-gateway.service").read_text()
    unit.write_text(text.replace("TimeoutStopSec=30", "TimeoutStopSecs=30"))
    done = subprocess.run(
        [_systemd_analyze(), "verify", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "TimeoutStopSecs" in done.stderr


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_command_exists(unit: Path) -> None:
    """ExecStart names a real `guanjia` sub-command with options it accepts."""
    line = next(x for x in unit.read_text().splitlines() if x.startswith("ExecStart="))
    argv = line.removeprefix("ExecStart=").split()
    assert argv[0] == INSTALLED
    words = [a for a in argv[1:] if not a.startswith("-")]
    flags = [a for a in argv[1:] if a.startswith("--")]
    subcommand = argv[1 : 1 + next(i for i, a in enumerate(argv[1:]) if a.startswith("-"))]
    assert subcommand == words[: len(subcommand)]
    done = subprocess.run(
        [sys.executable, "-m", "guanjia", *subcommand, "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for flag in flags:
        assert flag in done.stdout, flag
