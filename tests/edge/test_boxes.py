"""Overlap of relative boxes (`edge.boxes`), table-driven."""

from __future__ import annotations

import pytest

from edge.boxes import RelBox, area, containment, iou

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


def test_area_is_a_fraction_of_the_frame() -> None:
    assert area(CAR) == pytest.approx(0.06)
    assert area((0.0, 0.0, 1.0, 1.0)) == 1.0
