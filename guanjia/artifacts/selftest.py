"""Pure comparison of a self-test run with the detections an artifact promises.

The edge runs the model (edge.model_update.selftest); this decides whether what it found is
what the signer saw: every confident expected detection (score >= 0.5) needs a found
detection of the same class with IoU >= `min_iou` and a score within `score_tolerance`, for
at least `min_recall` of them; and nothing confident may appear that was not expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from guanjia.artifacts.manifest import ExpectedDetection, SelfTestSpec

CONFIDENT = 0.5


@dataclass(frozen=True)
class FrameOutcome:
    """How one reference frame went."""

    file: str
    expected: int
    matched: int
    unexpected: int

    @property
    def recall(self) -> float:
        """Matched share of the confident expected detections (1.0 when none)."""
        return 1.0 if self.expected == 0 else self.matched / self.expected


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def compare_detections(
    file: str,
    expected: Sequence[ExpectedDetection],
    found: Sequence[ExpectedDetection],
    spec: SelfTestSpec,
) -> FrameOutcome:
    """Greedy one-to-one matching of `found` against the confident `expected` detections."""
    wanted = [e for e in expected if e.score >= CONFIDENT]
    free = list(found)
    matched = 0
    for exp in sorted(wanted, key=lambda d: -d.score):
        best, best_iou = None, spec.min_iou
        for cand in free:
            if cand.class_name != exp.class_name:
                continue
            if abs(cand.score - exp.score) > spec.score_tolerance:
                continue
            iou = _iou(cand.box, exp.box)
            if iou >= best_iou:
                best, best_iou = cand, iou
        if best is not None:
            free.remove(best)
            matched += 1
    # Confident extras mean a different model (or different decoding) than the one signed.
    extra_limit = CONFIDENT + spec.score_tolerance
    unexpected = sum(1 for cand in free if cand.score >= extra_limit)
    return FrameOutcome(file=file, expected=len(wanted), matched=matched, unexpected=unexpected)
