"""How many 640x480 streams at 5 fps one process sustains: decode + pipeline, no backlog.

Each stream is an MJPEG file (the parked-car scene, looping) read with `edge.capture`
decimated to 5 fps, and its own `CameraPipeline` (own motion gate, tracker, rules) sharing
one detector session. N streams are processed round-robin by two worker threads (the
machine has 2 cores; ONNX Runtime and OpenCV release the GIL). The run sustains N streams
if it processes ``N x 5 x seconds`` frames in at most ``seconds`` of wall time. The physical
limit printed alongside is the raw `session.run` rate measured in the same run: the number of
streams the CPU could carry if every frame were inferred and nothing else cost anything.

    python -m benchmarks.edge_streams [--seconds 20] [--max 48] [--gate-off]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import threading
import time
from pathlib import Path

from edge.actions import LoggingActionSink
from edge.camera_config import parse_camera_config
from edge.capture import FrameSource, open_source
from edge.detector import OnnxDetector, load_detector
from edge.model_dir import default_manifest_path, resolve_model_dir
from edge.pipeline import CameraPipeline
from guanjia import scenes as sc


def _write_clip(folder: Path, seconds: float) -> Path:
    clip = sc.car_parks(park_s=max(4.0, seconds - 6.0), tail_s=2.0)  # 2+park+2+2 s
    return sc.write_clip(clip, folder / "lane.avi")


def _trial(
    n: int, clip: Path, seconds: float, detector: OnnxDetector, gate: bool
) -> tuple[float, int, float]:
    config = parse_camera_config(
        {**sc.lane_config(), "source": str(clip), "motion": {"enabled": gate}}
    )
    streams = []
    for i in range(n):
        streams.append(
            (
                open_source(config),
                CameraPipeline(
                    config, detector, LoggingActionSink(), site_id="b", device_id=f"d{i}"
                ),
            )
        )
    frames_per_stream = int(seconds * config.fps)
    done = [0]
    calls = [0]
    lock = threading.Lock()

    def work(part: list[tuple[FrameSource, CameraPipeline]]) -> None:
        for _ in range(frames_per_stream):
            for source, pipeline in part:
                frame = source.read()
                if frame is None:
                    continue
                pipeline.process(frame.image, 1_800_000_000.0 + frame.clip_s)
                with lock:
                    done[0] += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=work, args=(streams[k::2],)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    for source, pipeline in streams:
        calls[0] += pipeline.stats().detector_calls
        source.close()
    return wall, done[0], calls[0] / max(1, done[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--max", type=int, default=48)
    parser.add_argument("--gate-off", action="store_true")
    parser.add_argument("--counts", default="1,2,4,8,12,16,20,24,32,40,48")
    args = parser.parse_args()
    detector = load_detector(resolve_model_dir(None), default_manifest_path(), threads=1)
    with tempfile.TemporaryDirectory() as tmp:
        clip = _write_clip(Path(tmp), args.seconds)
        frame = sc.car_parks().frame(20)
        tensor = detector.preprocess(frame)[0]
        detector.run(tensor)
        t0 = time.perf_counter()
        for _ in range(30):
            detector.run(tensor)
        run_ms = (time.perf_counter() - t0) / 30 * 1000
        limit = 2 * 1000 / run_ms / 5  # 2 cores, every frame inferred, 5 fps per stream
        print(
            f"session.run {run_ms:.1f} ms -> physical limit ~{limit:.1f} streams"
            " with every frame inferred (2 cores)"
        )
        best = 0
        for n in [int(c) for c in args.counts.split(",") if int(c) <= args.max]:
            wall, frames, duty = _trial(n, clip, args.seconds, detector, not args.gate_off)
            video_s = frames / (n * 5.0)  # seconds of video actually processed per stream
            ok = wall <= video_s
            best = n if ok else best
            print(
                f"  streams {n:3d}: {frames:6d} frames in {wall:6.1f} s for {video_s:.0f} s"
                f" of video ({frames / wall:6.1f} fps, need {n * 5}), duty {duty:.2f},"
                f" {'sustained' if ok else 'BACKLOG'}"
            )
            if not ok:
                break
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"streams sustained: {best} (target >= 20), gate {'off' if args.gate_off else 'on'};"
            f" ratio to the all-inferred limit {best / limit:.2f}"
        )
        print(f"peak RSS: {rss_mb:.0f} MB (target <= 500)")


if __name__ == "__main__":
    main()
