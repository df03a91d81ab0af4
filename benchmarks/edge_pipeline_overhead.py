"""Pipeline time per frame ÷ raw `session.run` time on the same frames (target <= 1.3).

The physical limit of the edge pipeline is the model itself: ONNX Runtime's `session.run`
on the prepared tensor. Everything else (letterbox, decode, NMS, motion gate, tracker, zone
rules, event building) is overhead. The gate is OFF here so every frame pays for inference,
as the worst case does; snapshots are rendered as usual.

    python -m benchmarks.edge_pipeline_overhead [--frames N]
"""

from __future__ import annotations

import argparse
import time

from edge.actions import LoggingActionSink
from edge.camera_config import parse_camera_config
from edge.detector import load_detector
from edge.model_dir import default_manifest_path, resolve_model_dir
from edge.pipeline import CameraPipeline
from guanjia import scenes as scenarios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=100)
    args = parser.parse_args()
    detector = load_detector(resolve_model_dir(None), default_manifest_path(), threads=1)
    clip = scenarios.car_parks()
    frames = [clip.frame(i % clip.n_frames) for i in range(args.frames)]
    config = parse_camera_config({**scenarios.lane_config(), "motion": {"enabled": False}})
    pipeline = CameraPipeline(
        config, detector, LoggingActionSink(), site_id="bench", device_id="bench"
    )
    tensors = [detector.preprocess(f)[0] for f in frames]
    detector.run(tensors[0])  # warm-up
    # Interleave the two measurements in rounds so CPU contention hits both alike.
    run_s = pipe_s = 0.0
    events = 0
    for i, (frame, tensor) in enumerate(zip(frames, tensors, strict=True)):
        t0 = time.perf_counter()
        detector.run(tensor)
        t1 = time.perf_counter()
        events += len(pipeline.process(frame, 1_800_000_000.0 + i / 5))
        t2 = time.perf_counter()
        run_s += t1 - t0
        pipe_s += t2 - t1
    n = len(frames)
    print(f"frames: {n} (640x480, gate off, {events} events)")
    print(f"session.run per frame:      {run_s / n * 1000:7.2f} ms")
    print(f"pipeline.process per frame: {pipe_s / n * 1000:7.2f} ms")
    print(f"ratio pipeline / session.run: {pipe_s / run_s:.3f} (target <= 1.3)")


if __name__ == "__main__":
    main()
