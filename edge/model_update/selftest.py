"""Run an unpacked artifact's model on its reference frames, as the node would run it.

A fresh ONNX Runtime session (edge.detector checks sha256 and tensor shapes), then each
reference frame: outputs decode, detections match what the signer recorded, and the median
inference time is within the artifact's budget.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from edge.capture import CaptureError, read_image
from edge.detector import ModelError, load_detector
from guanjia.artifacts import (
    ExpectedDetection,
    FrameOutcome,
    VerifiedArtifact,
    compare_detections,
)


class SelfTestError(RuntimeError):
    """The model does not do on this node what its artifact promises."""


@dataclass(frozen=True)
class SelfTestReport:
    """What the self-test measured."""

    frames: list[FrameOutcome]
    median_ms: float
    budget_ms: float

    def summary(self) -> str:
        """One line for logs and reports."""
        matched = sum(f.matched for f in self.frames)
        expected = sum(f.expected for f in self.frames)
        return (
            f"{len(self.frames)} frames, {matched}/{expected} detections matched, "
            f"median {self.median_ms:.0f} ms of {self.budget_ms:.0f} ms budget"
        )


def run_self_test(artifact: VerifiedArtifact, threads: int = 1) -> SelfTestReport:
    """Load and exercise the model; SelfTestError with a one-line reason when it fails."""
    manifest = artifact.manifest
    spec = manifest.selftest
    try:
        detector = load_detector(artifact.directory, manifest.model, threads)
    except ModelError as exc:
        raise SelfTestError(f"model does not load as its manifest says: {exc}") from exc
    outcomes: list[FrameOutcome] = []
    timings: list[float] = []
    for ref in manifest.reference:
        try:
            frame = read_image(artifact.frame_path(ref.file))
        except CaptureError as exc:
            raise SelfTestError(f"{ref.file}: {exc}") from exc
        started = time.perf_counter()
        try:
            found = detector.detect(frame)
        except ModelError as exc:
            raise SelfTestError(f"{ref.file}: outputs do not decode: {exc}") from exc
        timings.append((time.perf_counter() - started) * 1000.0)
        seen = [
            ExpectedDetection(class_name=d.class_name, score=min(1.0, max(0.0, d.score)), box=d.box)
            for d in found
        ]
        outcome = compare_detections(ref.file, ref.detections, seen, spec)
        if outcome.recall < spec.min_recall or outcome.unexpected:
            raise SelfTestError(
                f"{ref.file}: detections differ from the signed ones ({outcome.matched} of "
                f"{outcome.expected} matched, {outcome.unexpected} unexpected)"
            )
        outcomes.append(outcome)
    median = statistics.median(timings)
    if median > spec.latency_budget_ms:
        raise SelfTestError(
            f"median inference {median:.0f} ms is over the {spec.latency_budget_ms:.0f} ms budget"
        )
    return SelfTestReport(frames=outcomes, median_ms=median, budget_ms=spec.latency_budget_ms)
