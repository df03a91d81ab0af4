"""The `guanjia` command skeleton."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from guanjia import __version__
from guanjia.cli import app


def test_version_prints_version_and_prefix() -> None:
    result = CliRunner().invoke(app, ["version"])
    assert result.exit_code == 0
    assert __version__ in result.output
    assert "guanjia/v1" in result.output


def test_unknown_subcommand_fails() -> None:
    result = CliRunner().invoke(app, ["teleport"])
    assert result.exit_code != 0


def test_module_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "guanjia", "version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("guanjia ")
