"""The object detector: an ONNX Runtime session driven by the model manifest.

This is the only module that imports onnxruntime.

`load_detector` verifies the weights against the manifest's sha256, opens a CPU session with
the configured thread count, and checks the model's input and output shapes against what the
manifest promises, so a wrong model fails at start-up with a clear `ModelError` and not with
nonsense boxes at 3 a.m. Pre- and post-processing follow the manifest: letterbox, YOLOX grid
decoding or the Ultralytics YOLOv8/YOLO11 ``[1, 4+nc, N]`` layout, per-class NMS, and the
class map onto our object categories.

Exception tree::

    ModelError (ValueError)
    ├── ModelFileError       weights missing/unreadable, or sha256 differs from the manifest
    └── ModelShapeError      input/output names or shapes do not match the manifest
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from pydantic import ValidationError

from contract import Manifest, ObjectCategory
from edge import imaging
from edge.boxes import RelBox

FloatArray = imaging.FloatArray


class ModelError(ValueError):
    """The model cannot be used as described by its manifest."""


class ModelFileError(ModelError):
    """Weights missing, unreadable, or not the bytes the manifest names (sha256)."""


class ModelShapeError(ModelError):
    """The model's tensors do not match the manifest (names, shapes, class count, layout)."""


@dataclass(frozen=True)
class Detection:
    """One detected object, box in pixels of the original frame (x1, y1, x2, y2)."""

    class_id: int
    class_name: str
    category: ObjectCategory | None
    score: float
    box: tuple[float, float, float, float]

    def relative(self, width: int, height: int) -> RelBox:
        """The box relative to a width x height frame, clipped to 0..1."""
        x1, y1, x2, y2 = self.box
        return (
            min(1.0, max(0.0, x1 / width)),
            min(1.0, max(0.0, y1 / height)),
            min(1.0, max(0.0, x2 / width)),
            min(1.0, max(0.0, y2 / height)),
        )


class Detector(Protocol):
    """What the pipeline needs from a detector."""

    @property
    def manifest(self) -> Manifest:
        """The manifest of the loaded model."""

    def detect(self, frame: npt.NDArray[np.uint8]) -> list[Detection]:
        """Detections of one BGR frame, best score first."""


def load_manifest(path: Path) -> Manifest:
    """Read a manifest JSON file; ModelError naming the file on any problem."""
    try:
        return Manifest.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
    except OSError as exc:
        raise ModelFileError(f"cannot read manifest {path}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ModelError(f"manifest {path} is invalid: {exc}") from exc


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def expected_output_shape(manifest: Manifest) -> tuple[int, int, int]:
    """The output shape the manifest implies: YOLOX [1, N, 5+nc]; Ultralytics [1, 4+nc, N]."""
    nc = len(manifest.class_names)
    w, h = manifest.input.width, manifest.input.height
    anchors = sum(math.ceil(w / s) * math.ceil(h / s) for s in manifest.output.strides)
    if manifest.output.format == "yolox":
        return (1, anchors, 5 + nc)
    return (1, 4 + nc, anchors)


def _dims_match(actual: list[int | str | None], expected: tuple[int, ...]) -> bool:
    if len(actual) != len(expected):
        return False
    # Symbolic (dynamic) dimensions are checked on the first real output instead.
    return all(not isinstance(a, int) or a == e for a, e in zip(actual, expected, strict=True))


def decode_yolox(raw: FloatArray, manifest: Manifest) -> tuple[FloatArray, FloatArray]:
    """YOLOX [N, 5+nc] grid outputs → (boxes xyxy in input pixels [N, 4], class scores [N, nc])."""
    w, h = manifest.input.width, manifest.input.height
    grids, strides = [], []
    for stride in manifest.output.strides:
        gw, gh = math.ceil(w / stride), math.ceil(h / stride)
        ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        grids.append(np.stack((xs, ys), axis=-1).reshape(-1, 2))
        strides.append(np.full((gw * gh, 1), stride))
    grid = np.concatenate(grids).astype(np.float32)
    stride_col = np.concatenate(strides).astype(np.float32)
    centre = (raw[:, 0:2] + grid) * stride_col
    size = np.exp(np.minimum(raw[:, 2:4], 20.0)) * stride_col
    boxes = np.concatenate((centre - size / 2, centre + size / 2), axis=1)
    scores = raw[:, 4:5] * raw[:, 5:]
    return boxes.astype(np.float32), scores.astype(np.float32)


def decode_ultralytics(raw: FloatArray) -> tuple[FloatArray, FloatArray]:
    """YOLOv8/YOLO11 [4+nc, N] outputs (cx, cy, w, h, class scores) → (boxes xyxy, scores)."""
    rows = raw.T
    centre, size = rows[:, 0:2], rows[:, 2:4]
    boxes = np.concatenate((centre - size / 2, centre + size / 2), axis=1)
    return boxes.astype(np.float32), np.ascontiguousarray(rows[:, 4:], dtype=np.float32)


class OnnxDetector:
    """A YOLO-family detector on ONNX Runtime, configured entirely by its manifest."""

    def __init__(self, session: ort.InferenceSession, manifest: Manifest) -> None:
        self._session = session
        self._manifest = manifest
        self._categories = [manifest.class_map.get(name) for name in manifest.class_names]
        self._output_checked = False

    @property
    def manifest(self) -> Manifest:
        """The manifest this detector was loaded with."""
        return self._manifest

    def preprocess(self, frame: npt.NDArray[np.uint8]) -> tuple[FloatArray, imaging.Letterbox]:
        """Frame → input tensor, and the letterbox needed to map boxes back."""
        spec, pre = self._manifest.input, self._manifest.preprocess
        if pre.letterbox:
            canvas, lb = imaging.letterbox(
                frame,
                spec.width,
                spec.height,
                pad_value=pre.pad_value,
                center=pre.align == "center",
            )
        else:
            canvas, lb = imaging.stretch(frame, spec.width, spec.height)
        if spec.channel_order == "RGB":
            canvas = canvas[:, :, ::-1]
        tensor: npt.NDArray[np.float32] | npt.NDArray[np.uint8]
        if spec.dtype == "uint8":
            tensor = canvas
        else:
            scaled = canvas.astype(np.float32)
            if pre.scale != 1.0:
                scaled = (scaled * pre.scale).astype(np.float32)
            if pre.mean is not None:
                scaled = scaled - np.asarray(pre.mean, dtype=np.float32)
            if pre.std is not None:
                scaled = (scaled / np.asarray(pre.std, dtype=np.float32)).astype(np.float32)
            tensor = scaled
        if spec.layout == "NCHW":
            tensor = tensor.transpose(2, 0, 1)
        return np.ascontiguousarray(tensor[np.newaxis]), lb

    def run(self, tensor: FloatArray) -> FloatArray:
        """The raw `session.run` on a prepared tensor (the benchmark's physical limit)."""
        outputs = self._session.run(
            [self._manifest.output.name], {self._manifest.input.name: tensor}
        )
        result: FloatArray = np.asarray(outputs[0], dtype=np.float32)
        if not self._output_checked:
            expected = expected_output_shape(self._manifest)
            if tuple(result.shape) != expected:
                raise ModelShapeError(
                    f"model {self._manifest.name} returned output of shape {list(result.shape)}, "
                    f"manifest ({self._manifest.output.format}) implies {list(expected)}"
                )
            self._output_checked = True
        return result

    def postprocess(self, raw: FloatArray, lb: imaging.Letterbox) -> list[Detection]:
        """Decode, threshold, per-class NMS, map back to original pixels and to our categories."""
        out = self._manifest.output
        if out.format == "yolox":
            boxes, scores = decode_yolox(raw[0], self._manifest)
        else:
            boxes, scores = decode_ultralytics(raw[0])
        class_ids = scores.argmax(axis=1)
        best = scores[np.arange(len(scores)), class_ids]
        keep = best > out.score_threshold
        boxes, best, class_ids = boxes[keep], best[keep], class_ids[keep].astype(np.int64)
        kept = imaging.nms_per_class(boxes, best, class_ids, iou=out.nms_iou)
        result: list[Detection] = []
        for i in kept:
            x1, y1, x2, y2 = (float(v) for v in boxes[i])
            x1, x2 = (x1 - lb.dx) / lb.sx, (x2 - lb.dx) / lb.sx
            y1, y2 = (y1 - lb.dy) / lb.sy, (y2 - lb.dy) / lb.sy
            cid = int(class_ids[i])
            result.append(
                Detection(
                    class_id=cid,
                    class_name=self._manifest.class_names[cid],
                    category=self._categories[cid],
                    score=float(best[i]),
                    box=(x1, y1, x2, y2),
                )
            )
        return result

    def detect(self, frame: npt.NDArray[np.uint8]) -> list[Detection]:
        """Detections of one BGR frame (any size), boxes in its pixels, best score first."""
        imaging.check_frame(frame)
        tensor, lb = self.preprocess(frame)
        return self.postprocess(self.run(tensor), lb)


def load_detector(model_dir: Path, manifest: Manifest | Path, threads: int = 1) -> OnnxDetector:
    """Open the model named by `manifest` in `model_dir` and check it against the manifest.

    Verifies the weights' sha256, the input name/shape and the output name/shape (YOLOX
    ``[1, N, 5+nc]`` or Ultralytics ``[1, 4+nc, N]``). Raises `ModelFileError` or
    `ModelShapeError` with the file and the mismatch spelt out.
    """
    if isinstance(manifest, Path):
        manifest = load_manifest(manifest)
    weights = Path(model_dir) / manifest.file
    if not weights.is_file():
        raise ModelFileError(f"model weights {weights} not found (manifest {manifest.name})")
    digest = _sha256(weights)
    if digest != manifest.sha256:
        raise ModelFileError(
            f"model weights {weights} have sha256 {digest}, manifest says {manifest.sha256}: "
            "wrong or corrupted file"
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            str(weights), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # ORT raises its own untyped errors for unparsable files
        raise ModelFileError(f"ONNX Runtime cannot load {weights}: {exc}") from exc
    _check_io(session, manifest)
    return OnnxDetector(session, manifest)


def _check_io(session: ort.InferenceSession, manifest: Manifest) -> None:
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    spec = manifest.input
    if spec.name not in inputs:
        raise ModelShapeError(
            f"model has no input {spec.name!r} (manifest); it has {sorted(inputs)}"
        )
    if spec.layout == "NCHW":
        want_in: tuple[int, ...] = (1, 3, spec.height, spec.width)
    else:
        want_in = (1, spec.height, spec.width, 3)
    if not _dims_match(list(inputs[spec.name].shape), want_in):
        raise ModelShapeError(
            f"model input {spec.name!r} has shape {inputs[spec.name].shape}, manifest "
            f"({spec.layout} {spec.width}x{spec.height}) implies {list(want_in)}"
        )
    out = manifest.output
    if out.name not in outputs:
        raise ModelShapeError(
            f"model has no output {out.name!r} (manifest); it has {sorted(outputs)}"
        )
    want_out = expected_output_shape(manifest)
    if not _dims_match(list(outputs[out.name].shape), want_out):
        raise ModelShapeError(
            f"model output {out.name!r} has shape {outputs[out.name].shape}, manifest "
            f"({out.format}, {len(manifest.class_names)} classes) implies {list(want_out)}"
        )
