"""The shipped ESPHome node files pass ESPHome's own `esphome config`, and name exactly the
metrics of their profiles (so every entity lands on a metric the gateway knows).

ESPHome pins paho-mqtt 1.x, which the gateway cannot share, so it lives in its own virtual
environment: `.venv-esphome` in the checkout (made by .ci/run), or the binary named by
``GUANJIA_ESPHOME``, or `esphome` on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.telemetry.profiles import load_profiles
from tests.conftest import REPO_ROOT, missing

ESPHOME_DIR = REPO_ROOT / "firmware_configs" / "esphome"
NODES = {"smoke_node.yaml": "smoke_detector", "charging_monitor.yaml": "charging_monitor"}


class _AnyTagLoader(yaml.SafeLoader):
    """Safe loading of ESPHome's dump, whose `!lambda`, `!secret`… tags are read as None."""


_AnyTagLoader.add_multi_constructor("!", lambda _loader, _suffix, _node: None)


def _entities(items: list[Any]) -> Iterator[dict[str, Any]]:
    """Every entity with a name, including a platform's sub-sensors (PZEM voltage, …)."""
    for item in items:
        if not isinstance(item, dict):
            continue
        if "name" in item and "platform" in item:
            yield item
        for value in item.values():
            if isinstance(value, dict) and "name" in value:
                yield value


def esphome_binary() -> str | None:
    named = os.environ.get("GUANJIA_ESPHOME")
    if named:
        return named
    local = REPO_ROOT / ".venv-esphome" / "bin" / "esphome"
    if local.exists():
        return str(local)
    return shutil.which("esphome")


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The node files beside the example secrets (secrets.yaml itself is never committed)."""
    folder = tmp_path_factory.mktemp("esphome")
    shutil.copytree(ESPHOME_DIR, folder, dirs_exist_ok=True)
    shutil.copy(folder / "secrets.example.yaml", folder / "secrets.yaml")
    return folder


@pytest.mark.parametrize("node", sorted(NODES))
def test_esphome_config_validates_and_names_profile_metrics(node_dir: Path, node: str) -> None:
    binary = esphome_binary()
    if binary is None:
        missing("ESPHome (python -m venv .venv-esphome && .venv-esphome/bin/pip install esphome)")
    assert binary is not None
    done = subprocess.run(
        [binary, "config", node],
        cwd=node_dir,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Configuration is valid!" in done.stdout + done.stderr
    # The validated config, as ESPHome expanded it (packages, substitutions): every entity
    # it publishes must resolve to a metric (and port) of the node's profile, and back.
    text = done.stdout[: done.stdout.rfind("INFO Configuration is valid")]
    expanded = yaml.load(text, Loader=_AnyTagLoader)
    names = {
        entity["name"]
        for component in ("sensor", "binary_sensor", "switch")
        for entity in _entities(expanded.get(component, []))
        if not entity.get("internal", False)
    }
    profile = load_profiles()[NODES[node]]
    assert all(profile.resolve(n) is not None for n in names), names
    expected = {
        f"port{p}_{m.name}" if m.per_port else m.name
        for m in profile.metrics
        for p in (range(1, profile.ports + 1) if m.per_port else [0])
    }
    assert names == expected
