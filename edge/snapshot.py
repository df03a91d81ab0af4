"""Event snapshots: the evidence JPEG with the zone and boxes drawn, persons optionally blurred.

The JPEG is sent as raw bytes on its own topic; the event carries a `SnapshotRef` with the
sha256, size and dimensions so the gateway can match and verify it. The size stays under the
contract's limit by lowering the JPEG quality if needed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from contract import MAX_SNAPSHOT_BYTES, SnapshotRef
from edge import imaging
from edge.boxes import RelBox
from edge.camera_config import SnapshotConfig

_ZONE_COLOUR = (0, 200, 255)
_SUBJECT_COLOUR = (0, 0, 255)
_OTHER_COLOUR = (200, 200, 200)


@dataclass(frozen=True)
class Overlay:
    """What to draw: the zone, the subject's box and label, other boxes, persons to blur."""

    zone: Sequence[tuple[float, float]]
    subject: RelBox
    label: str
    others: Sequence[tuple[RelBox, str]] = ()
    persons: Sequence[RelBox] = ()


def render(frame: imaging.Image, overlay: Overlay, config: SnapshotConfig) -> imaging.Image:
    """A copy of `frame` with the overlay applied and scaled to the configured width."""
    image = frame.copy()
    if config.blur_persons:
        imaging.blur_boxes(image, overlay.persons)
    if config.draw:
        imaging.draw_polygon(image, overlay.zone, _ZONE_COLOUR)
        for box, label in overlay.others:
            imaging.draw_box(image, box, _OTHER_COLOUR, label, thickness=1)
        imaging.draw_box(image, overlay.subject, _SUBJECT_COLOUR, overlay.label)
    return imaging.resize_to_width(image, config.max_width)


def encode(
    image: imaging.Image, config: SnapshotConfig, snapshot_id: str
) -> tuple[bytes, SnapshotRef]:
    """JPEG bytes under the contract's size limit, and the reference the event carries."""
    quality = config.jpeg_quality
    data = imaging.encode_jpeg(image, quality)
    while len(data) > MAX_SNAPSHOT_BYTES and quality > 20:
        quality -= 15
        data = imaging.encode_jpeg(image, quality)
    if len(data) > MAX_SNAPSHOT_BYTES:
        image = imaging.resize_to_width(image, image.shape[1] // 2)
        data = imaging.encode_jpeg(image, quality)
    ref = SnapshotRef(
        snapshot_id=snapshot_id,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        width=int(image.shape[1]),
        height=int(image.shape[0]),
    )
    return data, ref
