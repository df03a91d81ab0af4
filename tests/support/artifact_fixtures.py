"""Session fixtures: a signing key and a signed artifact of the real YOLOX-Nano.

Imported by the conftest of each test folder that needs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.detector import OnnxDetector, load_detector
from edge.model_dir import default_manifest_path
from guanjia.artifacts import SigningKey, generate_key
from tests.support.artifacts import PHOTOS, sign_real


@pytest.fixture(scope="session")
def good_detector(model_dir: Path) -> OnnxDetector:
    """The shared yolox_nano, one thread."""
    return load_detector(model_dir, default_manifest_path(), threads=1)


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    """The maintainers' key in these tests."""
    return generate_key()


@pytest.fixture(scope="session")
def real_artifact(
    tmp_path_factory: pytest.TempPathFactory,
    model_dir: Path,
    testdata_images: Path,
    signing_key: SigningKey,
    good_detector: OnnxDetector,
) -> Path:
    """yolox_nano 2.0.0 with two real photos, signed by `signing_key`."""
    out = tmp_path_factory.mktemp("artifact") / "yolox_nano-2.0.0.gjm"
    sign_real(
        out,
        signing_key,
        model=model_dir / "yolox_nano.onnx",
        photos=[testdata_images / name for name in PHOTOS],
        detections_from=good_detector,
    )
    return out
