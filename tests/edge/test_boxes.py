"""Overlap of relative boxes (`edge.boxes`), table-driven."""

from __future__ import annotations

import pytest

from edge.boxes import RelBox, area, containment, iou, touches

CAR: RelBox = (0.10, 0.50, 0.30, 0.80)
FAR: RelBox = (1.10, 0.50, 1.30, 0.80)


@pytest.mark.parametrize(
    ("a", "b", "want_iou", "want_containment"),
    [
        (CAR, CAR, 1.0, 1.0),
        (CAR, FAR, 0.0, 0.0),
        ((0.0, 0.0, 0.5, 1.0), (0.0, 0.0, 1.0, 1.0), 0.5, 1.0),
        ((0.0, 0.0, 1.0, 1.0), (0.0, 0.0, 0.5, 1.0), 0.5, 0.5),
        ((0.0, 0.0, 0.0, 0.0), CAR, 0.0, 0.0),
    ],
    ids=["same", "apart", "half-inside", "half-covered", "empty-box"],
)
def test_box_overlap(a: RelBox, b: RelBox, want_iou: float, want_containment: float) -> None:
    assert iou(a, b) == pytest.approx(want_iou)
    assert containment(a, b) == pytest.approx(want_containment)


@pytest.mark.parametrize(
    ("b", "margin", "touching"),
    [
        ((0.30, 0.50, 0.40, 0.80), 0.0, True),  # shares an edge
        ((0.31, 0.50, 0.40, 0.80), 0.0, False),
        ((0.31, 0.50, 0.40, 0.80), 0.02, True),
        ((0.20, 0.60, 0.25, 0.70), 0.0, True),  # inside
    ],
)
def test_touches(b: RelBox, margin: float, touching: bool) -> None:
    assert touches(CAR, b, margin) is touching
    assert touches(b, CAR, margin) is touching


def test_area_is_a_fraction_of_the_frame() -> None:
    assert area(CAR) == pytest.approx(0.06)
    assert area((0.0, 0.0, 1.0, 1.0)) == 1.0
