"""The named scenarios (guanjia.scenes): each has a camera; importing draws nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edge.camera_config import parse_camera_config
from guanjia import scenes


@pytest.mark.parametrize(
    "module", ["guanjia.scenes", "guanjia.scene_clips", "guanjia.scene_photos"]
)
def test_import_has_no_side_effects(module: str) -> None:
    code = f"import sys, {module}; print('cv2' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("name", sorted(scenes.SCENARIOS))
def test_every_scenario_has_a_valid_camera_config(name: str) -> None:
    scenario = scenes.SCENARIOS[name]()
    config = parse_camera_config(scenes.camera_config(scenario, source="clip.avi"))
    assert config.source == "clip.avi"
    assert config.zones
