"""Boxes relative to the frame and how much two of them overlap (pure).

A `RelBox` is ``(x1, y1, x2, y2)`` in fractions of the frame's width and height (0..1), so
tracks, zones and rules do not care about the stream's resolution. The detector's pixel boxes
become relative in the pipeline; snapshots turn them back into pixels when drawing.
"""

from __future__ import annotations

RelBox = tuple[float, float, float, float]


def area(box: RelBox) -> float:
    """Area as a fraction of the frame's area."""
    return (box[2] - box[0]) * (box[3] - box[1])


def _intersection(a: RelBox, b: RelBox) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy


def iou(a: RelBox, b: RelBox) -> float:
    """Intersection over union of two boxes."""
    inter = _intersection(a, b)
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def touches(a: RelBox, b: RelBox, margin: float = 0.0) -> bool:
    """True if `a` overlaps or touches `b` grown by `margin` on every side."""
    return not (
        a[2] < b[0] - margin or a[0] > b[2] + margin or a[3] < b[1] - margin or a[1] > b[3] + margin
    )


def containment(inner: RelBox, outer: RelBox) -> float:
    """Fraction of `inner`'s area that lies inside `outer`."""
    inner_area = area(inner)
    return _intersection(inner, outer) / inner_area if inner_area > 0 else 0.0
