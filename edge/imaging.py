"""Pure image operations on numpy frames, the one OpenCV module besides capture.

Resize and letterbox, per-class NMS (cv2.dnn.NMSBoxes), motion differencing and contours,
JPEG encode/decode of in-memory bytes, drawing zones and boxes, blurring persons. No file or
stream I/O here (that is `edge.capture`); every function takes arrays and returns arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]

# OpenCV spends its own threads on tiny ops; on a 2-4 core Pi they only fight ONNX Runtime.
cv2.setNumThreads(1)

_DILATE = np.ones((3, 3), dtype=np.uint8)


class ImageError(ValueError):
    """An array is not a usable BGR frame, or bytes are not a decodable image."""


def as_image(array: object) -> Image:
    """View an OpenCV result as a uint8 image (OpenCV's stubs type every array loosely)."""
    return np.asarray(array, dtype=np.uint8)


def check_frame(frame: object) -> Image:
    """Return `frame` if it is an HxWx3 uint8 array of sensible size, else raise ImageError."""
    if not isinstance(frame, np.ndarray):
        raise ImageError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ImageError(f"frame must be uint8 BGR, got dtype {frame.dtype}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ImageError(f"frame must be HxWx3 BGR, got shape {frame.shape}")
    if frame.shape[0] < 16 or frame.shape[1] < 16:
        raise ImageError(f"frame too small: {frame.shape[1]}x{frame.shape[0]}")
    return frame


def decode_image(data: bytes) -> Image:
    """Decode JPEG/PNG bytes to BGR; ImageError if the bytes are not an image."""
    buf = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if image is None:
        raise ImageError("bytes are not a decodable image (corrupt or truncated)")
    return as_image(image)


@dataclass(frozen=True)
class Letterbox:
    """Where the original frame sits in the model input: scales (sx, sy), offset (dx, dy).

    Input pixel = original pixel * scale + offset; letterboxing keeps sx == sy.
    """

    sx: float
    sy: float
    dx: int
    dy: int


def letterbox(
    frame: Image, width: int, height: int, *, pad_value: int, center: bool
) -> tuple[Image, Letterbox]:
    """Resize keeping aspect ratio into a width x height canvas filled with `pad_value`."""
    h, w = frame.shape[:2]
    ratio = min(width / w, height / h)
    new_w, new_h = int(w * ratio), int(h * ratio)  # truncation, as the YOLOX reference does
    resized = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((height, width, 3), pad_value, dtype=np.uint8)
    dx = (width - new_w) // 2 if center else 0
    dy = (height - new_h) // 2 if center else 0
    canvas[dy : dy + new_h, dx : dx + new_w] = resized
    return canvas, Letterbox(sx=ratio, sy=ratio, dx=dx, dy=dy)


def stretch(frame: Image, width: int, height: int) -> tuple[Image, Letterbox]:
    """Resize ignoring aspect ratio (for models trained without letterbox)."""
    h, w = frame.shape[:2]
    resized = as_image(cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR))
    return resized, Letterbox(sx=width / w, sy=height / h, dx=0, dy=0)


def nms_per_class(
    boxes_xyxy: FloatArray, scores: FloatArray, class_ids: npt.NDArray[np.int64], *, iou: float
) -> list[int]:
    """Indices kept by per-class non-maximum suppression (OpenCV's NMSBoxes), best first."""
    if len(scores) == 0:
        return []
    xywh = np.empty_like(boxes_xyxy)
    xywh[:, 0:2] = boxes_xyxy[:, 0:2]
    xywh[:, 2:4] = boxes_xyxy[:, 2:4] - boxes_xyxy[:, 0:2]
    # Batched NMS runs per class id in one call, in C++: no Python loop over classes.
    kept = cv2.dnn.NMSBoxesBatched(
        xywh.tolist(), scores.tolist(), class_ids.tolist(), 0.0, float(iou)
    )
    return sorted((int(i) for i in np.asarray(kept).reshape(-1)), key=lambda i: -scores[i])


def grey_small(frame: Image, width: int) -> FloatArray:
    """Downscaled, blurred grey frame as float32: the motion gate's working image."""
    h, w = frame.shape[:2]
    height = max(1, round(h * width / w))
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (5, 5), 0).astype(np.float32)


def look(frame: Image, box: Sequence[float], size: tuple[int, int] = (16, 12)) -> FloatArray:
    """A box's appearance as a tiny grey thumbnail, zero mean and unit variance.

    Normalised so that a car keeps its look from noon to dusk (a change of gain and offset);
    compared by correlation (`edge.stationary_memory`).
    """
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = _px(box, w, h)
    piece = frame[y1 : max(y1 + 1, y2), x1 : max(x1 + 1, x2)]
    grey = cv2.cvtColor(piece, cv2.COLOR_BGR2GRAY)
    thumb = cv2.resize(grey, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    thumb -= thumb.mean()
    return thumb / max(float(thumb.std()), 1.0)


def side_by_side(left: Image, right: Image, labels: tuple[str, str]) -> Image:
    """`left` and `right` next to each other at the height of `right`, each with a caption."""
    h = right.shape[0]
    scaled = cv2.resize(left, (max(1, round(left.shape[1] * h / left.shape[0])), h))
    out = np.ascontiguousarray(np.hstack([scaled, right]))
    for x, text in ((0, labels[0]), (scaled.shape[1], labels[1])):
        cv2.rectangle(out, (x, 0), (x + 12 + 11 * len(text), 26), (0, 0, 0), -1)
        cv2.putText(out, text, (x + 6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1)
    return out


def draw_fall(
    frame: Image,
    curve_rel: Sequence[tuple[float, float]],
    points_rel: Sequence[tuple[float, float]],
    top_rel: tuple[float, float],
    label: str,
) -> None:
    """Draw a fall in place: fitted curve, sightings, the top (a cross) and a caption."""
    h, w = frame.shape[:2]

    def px(p: tuple[float, float]) -> tuple[int, int]:
        return round(p[0] * w), round(p[1] * h)

    curve = np.array([px(p) for p in curve_rel], dtype=np.int32)
    cv2.polylines(frame, [curve], isClosed=False, color=(0, 255, 255), thickness=2)
    for p in points_rel:
        cv2.circle(frame, px(p), 4, (0, 0, 255), -1)
    cv2.drawMarker(frame, px(top_rel), (255, 0, 255), cv2.MARKER_CROSS, 24, 3)
    cv2.rectangle(frame, (0, 0), (12 + 10 * len(label), 28), (0, 0, 0), -1)
    cv2.putText(frame, label, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)


def strip_below(frame: Image, frames: Sequence[Image]) -> Image:
    """`frame` with `frames` side by side below it, scaled to its width."""
    if not frames:
        return frame
    w = frame.shape[1]
    row = np.hstack(list(frames))
    strip = cv2.resize(row, (w, max(1, round(row.shape[0] * w / row.shape[1]))))
    return as_image(np.ascontiguousarray(np.vstack([frame, strip])))


def accumulate(background: FloatArray, grey: FloatArray, alpha: float) -> None:
    """Blend `grey` into the running-average `background` in place."""
    cv2.accumulateWeighted(grey, background, alpha)


def changed_regions(
    background: FloatArray, grey: FloatArray, threshold: int, min_area_px: float
) -> tuple[list[tuple[int, int, int, int]], float]:
    """Bounding boxes (x1, y1, x2, y2 px) of changed blobs, and the changed fraction of the frame.

    The caller compensates global brightness first (see `edge.motion`).
    """
    diff = cv2.absdiff(grey, background)
    mask = (diff > threshold).astype(np.uint8)
    fraction = float(mask.mean())
    mask = as_image(cv2.dilate(mask, _DILATE, iterations=2))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    regions: list[tuple[int, int, int, int]] = []
    for contour in contours:
        if cv2.contourArea(contour) < min_area_px:
            continue
        x, y, w, h = cv2.boundingRect(contour)
        regions.append((x, y, x + w, y + h))
    return regions, fraction


def resize_to_width(frame: Image, max_width: int) -> Image:
    """Scale down (never up) so the frame is at most `max_width` wide."""
    h, w = frame.shape[:2]
    if w <= max_width:
        return frame
    size = (max_width, round(h * max_width / w))
    return as_image(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))


def encode_jpeg(frame: Image, quality: int) -> bytes:
    """JPEG bytes of a BGR frame."""
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ImageError("JPEG encoding failed")
    return bytes(buf.tobytes())


def _px(box: Sequence[float], w: int, h: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box
    return (
        max(0, min(w - 1, round(x1 * w))),
        max(0, min(h - 1, round(y1 * h))),
        max(0, min(w, round(x2 * w))),
        max(0, min(h, round(y2 * h))),
    )


def blur_boxes(frame: Image, boxes_rel: Sequence[Sequence[float]]) -> None:
    """Blur the given relative boxes in place (privacy of persons)."""
    h, w = frame.shape[:2]
    for box in boxes_rel:
        x1, y1, x2, y2 = _px(box, w, h)
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        roi = frame[y1:y2, x1:x2]
        k = max(3, (min(x2 - x1, y2 - y1) // 4) | 1)
        frame[y1:y2, x1:x2] = cv2.GaussianBlur(roi, (k, k), 0)


def draw_polygon(
    frame: Image, points_rel: Sequence[tuple[float, float]], colour: tuple[int, int, int]
) -> None:
    """Outline a zone given in relative coordinates, in place."""
    h, w = frame.shape[:2]
    pts = np.array([[round(x * w), round(y * h)] for x, y in points_rel], dtype=np.int32)
    cv2.polylines(frame, [pts], isClosed=True, color=colour, thickness=2)


def draw_box(
    frame: Image,
    box_rel: Sequence[float],
    colour: tuple[int, int, int],
    label: str,
    *,
    thickness: int = 2,
) -> None:
    """Draw a labelled relative box in place."""
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = _px(box_rel, w, h)
    cv2.rectangle(frame, (x1, y1), (x2, y2), colour, thickness)
    if label:
        cv2.putText(
            frame, label, (x1 + 2, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1
        )
