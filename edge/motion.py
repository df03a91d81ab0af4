"""The motion gate: cheap frame differencing that decides when the detector must run.

A downscaled, blurred grey frame is compared with a running-average background; changed
pixels are grouped into regions (contours). The gate compensates the frame's overall gain
first, and treats a change over most of the frame (lights switched on, a cloud, the camera's
IR switch) as a lighting change: it relearns the background at once and reports no regions,
so lighting never causes a storm of detector calls.

Beside that background the gate keeps the *empty scene*: the same running average, except that
it is frozen under the boxes the caller holds (the tracked objects). It is what the ground
looked like before a parked car or a dumped bag arrived, and stays so while it lies there, so
`edge.vacancy` can tell "the object is gone" (its place looks like the empty scene again) from
"something stands in front of it". A lighting change relearns it outside the held boxes and
scales it by the gain inside them.

The policy that turns motion into "run the detector now" lives in the pipeline
(`edge.schedule.DetectorSchedule`), because it also depends on the tracks and the zones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge import imaging
from edge.boxes import RelBox
from edge.camera_config import MotionConfig

# Mean brightness may drift this much between frames before it counts as a lighting change.
_MAX_GAIN_STEP = 0.15


@dataclass(frozen=True)
class Motion:
    """What changed in one frame: regions as relative boxes, the changed fraction."""

    regions: list[RelBox] = field(default_factory=list)
    changed: float = 0.0
    lighting_change: bool = False
    first_frame: bool = False


class MotionGate:
    """Running-average background subtraction on a small grey frame."""

    def __init__(self, config: MotionConfig) -> None:
        self._config = config
        self._background: imaging.FloatArray | None = None
        self._empty: imaging.FloatArray | None = None
        self._last: imaging.FloatArray | None = None
        self._shape: tuple[int, int] | None = None

    def reset(self) -> None:
        """Forget the background (next frame counts as the first)."""
        self._background = None
        self._empty = None

    def _slices(self, box: RelBox) -> tuple[slice, slice]:
        assert self._shape is not None
        h, w = self._shape
        x1, y1, x2, y2 = box
        c1, r1 = max(0, int(x1 * w)), max(0, int(y1 * h))
        c2, r2 = min(w, max(c1 + 1, int(x2 * w + 0.999))), min(h, max(r1 + 1, int(y2 * h + 0.999)))
        return slice(r1, r2), slice(c1, c2)

    def patches(self, box: RelBox) -> tuple[imaging.FloatArray, imaging.FloatArray] | None:
        """(empty scene, latest frame) inside `box`, small grey; None before the first frame."""
        if self._empty is None or self._last is None:
            return None
        rows, cols = self._slices(box)
        return self._empty[rows, cols], self._last[rows, cols]

    def _learn_empty(
        self, grey: imaging.FloatArray, hold: list[RelBox], *, relearn_gain: float | None
    ) -> None:
        if self._empty is None or self._empty.shape != grey.shape:
            self._empty = grey.copy()
            return
        kept = [(self._slices(box), self._empty[self._slices(box)].copy()) for box in hold]
        if relearn_gain is None:
            imaging.accumulate(self._empty, grey, self._config.alpha)
        else:  # a lighting change: relearn at once; what lies under the objects, by the gain
            self._empty[:] = grey
        gain = np.float32(relearn_gain or 1.0)
        for (rows, cols), patch in kept:
            self._empty[rows, cols] = patch * gain

    def absorb(self, regions: list[RelBox]) -> None:
        """Copy the latest frame into the background inside `regions` (relative boxes).

        Called for motion the detector has explained as "nothing of interest" (the hole a car
        left behind, a shadow): without it the running average keeps reporting that ghost for
        seconds and the detector keeps running on it.
        """
        if self._background is None or self._last is None:
            return
        h, w = self._background.shape
        for x1, y1, x2, y2 in regions:
            c1, r1 = max(0, int(x1 * w) - 1), max(0, int(y1 * h) - 1)
            c2, r2 = min(w, int(x2 * w + 0.999) + 1), min(h, int(y2 * h + 0.999) + 1)
            self._background[r1:r2, c1:c2] = self._last[r1:r2, c1:c2]

    def update(self, frame: imaging.Image, hold: list[RelBox] | None = None) -> Motion:
        """Compare `frame` with the background, then blend it in.

        `hold`: boxes under which the empty scene must not learn (the tracked objects).
        """
        hold = hold or []
        grey = imaging.grey_small(frame, self._config.width)
        self._last = grey
        if self._background is None or self._shape != grey.shape:
            self._background = grey.copy()
            self._shape = (grey.shape[0], grey.shape[1])
            self._empty = grey.copy()
            return Motion(first_frame=True)
        background = self._background
        gain = float(grey.mean()) / max(float(background.mean()), 1.0)
        h, w = grey.shape
        min_area_px = self._config.min_area * h * w
        regions_px, changed = imaging.changed_regions(
            background * np.float32(gain), grey, self._config.threshold, min_area_px
        )
        if abs(gain - 1.0) > _MAX_GAIN_STEP or changed > self._config.global_change:
            self._background = grey.copy()
            self._learn_empty(grey, hold, relearn_gain=gain)
            return Motion(changed=changed, lighting_change=True)
        imaging.accumulate(background, grey, self._config.alpha)
        self._learn_empty(grey, hold, relearn_gain=None)
        regions = [(x1 / w, y1 / h, x2 / w, y2 / h) for x1, y1, x2, y2 in regions_px]
        return Motion(regions=regions, changed=changed)
