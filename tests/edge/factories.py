"""Hand-built tracks and zone configs for the pure-core unit tests (no model, no images)."""

from __future__ import annotations

from typing import Any

from contract import ObjectCategory
from edge.boxes import RelBox
from edge.camera_config import CameraConfig, Zone
from edge.tracker import Track

SQUARE = [(0.2, 0.5), (0.6, 0.5), (0.6, 1.0), (0.2, 1.0)]
"""The zone of every unit test: bottom-centres with 0.2 < x < 0.6 and y > 0.5 are inside."""

IN: RelBox = (0.3, 0.6, 0.5, 0.8)  # bottom-centre (0.4, 0.8): inside SQUARE
OUT: RelBox = (0.7, 0.1, 0.9, 0.4)  # bottom-centre (0.8, 0.4): outside

_CLASS = {
    ObjectCategory.VEHICLE: "car",
    ObjectCategory.PERSON: "person",
    ObjectCategory.TWO_WHEELER: "motorcycle",
    ObjectCategory.LITTER_CANDIDATE: "bottle",
}


def make_track(
    track_id: int = 1,
    category: ObjectCategory = ObjectCategory.VEHICLE,
    box: RelBox = IN,
    *,
    stationary_since: float | None = None,
    confirmed: bool = True,
    seen: bool = True,
    missed_runs: int = 0,
    last_seen: float = 0.0,
) -> Track:
    """A track as the tracker would leave it; `stationary_since` set makes it stationary."""
    return Track(
        track_id=track_id,
        category=category,
        class_name=_CLASS[category],
        box=box,
        score=0.8,
        best_score=0.8,
        first_seen=0.0,
        last_seen=last_seen,
        anchor=box,
        anchor_since=stationary_since if stationary_since is not None else 0.0,
        last_box=box,
        confirmed=confirmed,
        stationary=stationary_since is not None,
        seen_last_update=seen,
        missed_runs=missed_runs,
    )


def zone(rule: str, **fields: Any) -> Zone:
    """One validated zone over SQUARE with inertia 1 (membership follows at once)."""
    config = CameraConfig.model_validate(
        {
            "camera_id": "cam",
            "source": "x",
            "zones": [{"id": "z", "rule": rule, "polygon": SQUARE, "inertia": 1, **fields}],
        }
    )
    return config.zones[0]
