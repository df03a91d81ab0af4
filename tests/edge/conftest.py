"""Fixtures for the edge vision tests: one real detector per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.detector import OnnxDetector, load_detector
from edge.model_dir import default_manifest_path


@pytest.fixture(scope="session")
def detector(model_dir: Path) -> OnnxDetector:
    """The shared yolox_nano on ONNX Runtime, one thread (as on a Pi per camera)."""
    return load_detector(model_dir, default_manifest_path(), threads=1)
