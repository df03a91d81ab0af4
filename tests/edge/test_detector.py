"""The detector on the real model and photos, and its refusals of wrong models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contract import Manifest
from edge.capture import read_image
from edge.detector import (
    ModelFileError,
    ModelShapeError,
    OnnxDetector,
    decode_ultralytics,
    expected_output_shape,
    load_detector,
    load_manifest,
)
from edge.imaging import ImageError
from edge.model_dir import ModelDirError, default_manifest_path, resolve_model_dir

EXPECTED = Path(__file__).resolve().parent / "data" / "expected_yolox_nano_detections.json"
"""yolox_nano's output on the five catalogue photos (a copy of the shared reference, kept in
the repository: the photos are fetched by sha256, this file is ours)."""


def _expected(testdata_images: Path) -> dict[str, list[dict[str, Any]]]:
    detections: dict[str, list[dict[str, Any]]] = json.loads(EXPECTED.read_text())["detections"]
    return detections


def test_reproduces_expected_detections(detector: OnnxDetector, testdata_images: Path) -> None:
    expected = _expected(testdata_images)
    assert len(expected) == 5
    for name, want in expected.items():
        got = detector.detect(read_image(testdata_images / name))
        assert len(got) == len(want), name
        unmatched = list(got)
        for item in want:
            box = np.array(item["bbox_xyxy"], dtype=float)
            match = [
                d
                for d in unmatched
                if d.class_name == item["label"]
                and abs(d.score - float(item["score"])) <= 0.01
                and np.abs(np.array(d.box) - box).max() <= 2.0
            ]
            assert match, f"{name}: no detection matches {item}"
            unmatched.remove(match[0])


def test_class_map_gives_our_categories(detector: OnnxDetector, testdata_images: Path) -> None:
    got = {
        d.class_name: d.category for d in detector.detect(read_image(testdata_images / "dog.jpg"))
    }
    assert got["bicycle"] == "two_wheeler"
    assert got["car"] == "vehicle"
    assert got["dog"] is None  # unmapped classes are reported but never tracked


def test_any_frame_size_maps_back_to_its_pixels(
    detector: OnnxDetector, testdata_images: Path
) -> None:
    image = read_image(testdata_images / "000000423617.jpg")
    big = np.ascontiguousarray(np.repeat(np.repeat(image, 2, axis=0), 2, axis=1))
    small_best = detector.detect(image)[0]
    big_best = detector.detect(big)[0]
    assert big_best.class_name == small_best.class_name
    assert np.allclose(np.array(big_best.box) / 2, small_best.box, atol=3.0)


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((480, 640), dtype=np.uint8),
        np.zeros((480, 640, 3), dtype=np.float32),
        np.zeros((4, 4, 3), dtype=np.uint8),
        "not an image",
    ],
    ids=["grey", "float", "tiny", "str"],
)
def test_garbage_frame_is_a_clear_error(detector: OnnxDetector, frame: object) -> None:
    with pytest.raises(ImageError):
        detector.detect(frame)  # type: ignore[arg-type]  # wrong types are the point


def _manifest(**changes: object) -> Manifest:
    data = json.loads(default_manifest_path().read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            data[section][field] = value
        else:
            data[section] = value
    return Manifest.model_validate(data)


def test_missing_weights_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"yolox_nano\.onnx not found"):
        load_detector(tmp_path, default_manifest_path())


def test_corrupted_weights_fail_the_checksum(tmp_path: Path, model_dir: Path) -> None:
    data = bytearray((model_dir / "yolox_nano.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "yolox_nano.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256"):
        load_detector(tmp_path, default_manifest_path())


def test_outputs_not_matching_manifest_layout(model_dir: Path) -> None:
    wrong = _manifest(output__format="ultralytics")
    with pytest.raises(ModelShapeError, match=r"output 'output' has shape \[1, 3549, 85\]"):
        load_detector(model_dir, wrong)


def test_outputs_not_matching_class_count(model_dir: Path) -> None:
    data = json.loads(default_manifest_path().read_text())
    data["class_names"] = [*data["class_names"], "e-bike"]
    with pytest.raises(ModelShapeError, match="81 classes"):
        load_detector(model_dir, Manifest.model_validate(data))


def test_input_size_not_matching_manifest(model_dir: Path) -> None:
    with pytest.raises(ModelShapeError, match="input 'images'"):
        load_detector(model_dir, _manifest(input__width=640, input__height=640))


def test_wrong_tensor_name(model_dir: Path) -> None:
    with pytest.raises(ModelShapeError, match="no output 'detections'"):
        load_detector(model_dir, _manifest(output__name="detections"))


def test_weights_that_are_not_onnx(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"definitely not a protobuf")
    import hashlib

    manifest = _manifest(file="junk.onnx", sha256=hashlib.sha256(junk.read_bytes()).hexdigest())
    with pytest.raises(ModelFileError, match="cannot load"):
        load_detector(tmp_path, manifest)


def test_bad_manifest_file(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{"schema": "guanjia.model_manifest/1"}')
    with pytest.raises(ValueError, match="is invalid"):
        load_manifest(path)


def test_ultralytics_layout_decoding() -> None:
    # A YOLOv8 head: [4 + nc, N] with (cx, cy, w, h) in input pixels and per-class scores.
    nc, n = 3, 5
    raw = np.zeros((4 + nc, n), dtype=np.float32)
    raw[:4, 2] = [100, 50, 40, 20]
    raw[4 + 1, 2] = 0.9
    boxes, scores = decode_ultralytics(raw)
    assert boxes.shape == (n, 4)
    assert scores.shape == (n, nc)
    assert boxes[2].tolist() == [80, 40, 120, 60]
    assert scores[2].argmax() == 1


def test_expected_shapes_per_layout() -> None:
    assert expected_output_shape(_manifest()) == (1, 3549, 85)
    assert expected_output_shape(_manifest(output__format="ultralytics")) == (1, 84, 3549)


def test_model_dir_resolution(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolve_model_dir(model_dir) == model_dir
    with pytest.raises(ModelDirError, match="--model-dir"):
        resolve_model_dir(tmp_path)
    shutil.copy(model_dir / "yolox_nano.onnx", tmp_path / "yolox_nano.onnx")
    monkeypatch.setenv("GUANJIA_MODEL_DIR", str(tmp_path))
    assert resolve_model_dir(None) == tmp_path
    monkeypatch.setenv("GUANJIA_MODEL_DIR", str(tmp_path / "nope"))
    with pytest.raises(ModelDirError, match="GUANJIA_MODEL_DIR"):
        resolve_model_dir(None)


def test_model_dir_falls_back_to_the_fetch_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edge.model_dir as where

    monkeypatch.delenv("GUANJIA_MODEL_DIR", raising=False)
    monkeypatch.setattr(where, "_REPO_ROOT", tmp_path / "checkout")  # no ../shared beside it
    monkeypatch.setenv("GUANJIA_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(ModelDirError, match="run `guanjia model fetch`"):
        resolve_model_dir(None)
    (tmp_path / "cache" / "models").mkdir(parents=True)
    (tmp_path / "cache" / "models" / "yolox_nano.onnx").write_bytes(b"weights")
    assert resolve_model_dir(None) == tmp_path / "cache" / "models"
