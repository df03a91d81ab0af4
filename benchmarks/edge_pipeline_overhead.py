"""Pipeline time per frame ÷ raw `session.run` time on the same frames (target <= 1.3).

The physical limit of the edge pipeline is the model itself: ONNX Runtime's `session.run`
on the prepared tensor. Everything else (letterbox, decode, NMS, motion gate, tracker, zone
rules, event building) is overhead. The gate is OFF here so every frame pays for inference,
as the worst case does; snapshots are rendered as usual. The two are interleaved frame by
frame (so load hits both alike), in `--rounds` rounds over the same frames; the medians of the
rounds are reported, with CPU µs per frame of each (one thread: CPU ≈ wall unless preempted).

    python -m benchmarks.edge_pipeline_overhead [--frames N] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import time

from benchmarks.support.machine import loadavg
from benchmarks.support.result import emit, make
from benchmarks.support.rounds import Rounds
from edge.actions import LoggingActionSink
from edge.camera_config import parse_camera_config
from edge.detector import load_detector
from edge.model_dir import default_manifest_path, resolve_model_dir
from edge.pipeline import CameraPipeline
from guanjia import scenes as scenarios


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="60 frames per round.")
    parser.add_argument("--smoke", action="store_true", help="Smallest run (not a figure).")
    args = parser.parse_args(argv)
    if args.quick:
        args.frames = 60
    if args.smoke:
        args.frames, args.rounds = 3, 1
    load0 = loadavg()
    detector = load_detector(resolve_model_dir(None), default_manifest_path(), threads=1)
    clip = scenarios.car_parks()
    frames = [clip.frame(i % clip.n_frames) for i in range(args.frames)]
    config = parse_camera_config({**scenarios.lane_config(), "motion": {"enabled": False}})
    tensors = [detector.preprocess(f)[0] for f in frames]
    detector.run(tensors[0])  # warm-up
    rounds = Rounds()
    events = 0
    for number in range(args.rounds):
        pipeline = CameraPipeline(
            config, detector, LoggingActionSink(), site_id="bench", device_id="bench"
        )
        run_s = pipe_s = run_cpu = pipe_cpu = 0.0
        for i, (frame, tensor) in enumerate(zip(frames, tensors, strict=True)):
            c0, t0 = time.process_time(), time.perf_counter()
            detector.run(tensor)
            c1, t1 = time.process_time(), time.perf_counter()
            events += len(pipeline.process(frame, 1_800_000_000.0 + i / 5))
            c2, t2 = time.process_time(), time.perf_counter()
            run_s, pipe_s = run_s + t1 - t0, pipe_s + t2 - t1
            run_cpu, pipe_cpu = run_cpu + c1 - c0, pipe_cpu + c2 - c1
        n = len(frames)
        rounds.add("run", {"ms": run_s / n * 1000, "cpu_us": run_cpu / n * 1e6})
        rounds.add("pipe", {"ms": pipe_s / n * 1000, "cpu_us": pipe_cpu / n * 1e6})
        print(
            f"round {number + 1}: session.run {run_s / n * 1000:6.2f} ms,"
            f" pipeline.process {pipe_s / n * 1000:6.2f} ms per frame"
        )
    m = rounds.median
    print(f"frames: {len(frames)} x {args.rounds} rounds (640x480, gate off, {events} events)")
    print(f"ratio pipeline / session.run: {m('pipe', 'ms') / m('run', 'ms'):.3f} (target <= 1.3)")
    emit(
        make(
            benchmark="edge_pipeline_overhead",
            name="pipeline.process per frame, gate off (every frame inferred)",
            figure=m("pipe", "ms"),
            unit="ms/frame",
            better="lower",
            limit=m("run", "ms"),
            limit_name="ONNX Runtime session.run on the same frames, interleaved",
            target="ratio >= 0.77 (pipeline <= 1.3 x session.run)",
            cpu_us_per_item=m("pipe", "cpu_us"),
            limit_cpu_us_per_item=m("run", "cpu_us"),
            rounds=args.rounds,
            size=f"{len(frames)} frames 640x480 (parked-car clip), 1 thread",
            loadavg_start=load0,
        )
    )


if __name__ == "__main__":
    main()
