"""Real image files for upload tests, encoded by OpenCV (the gateway itself has no imaging
library; its checks in `gateway.images` must hold against a real encoder's output)."""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np


@cache
def encoded(ext: str) -> bytes:
    """A real 16 x 12 image in the format of `ext` (`.jpg`, `.png` or `.webp`)."""
    pixels = np.zeros((12, 16, 3), dtype=np.uint8)
    pixels[:, :8] = (40, 120, 200)
    ok, data = cv2.imencode(ext, pixels)
    assert ok, ext
    return bytes(data.tobytes())
