"""How many 640x480 cameras at 5 fps one edge process sustains, against a measured limit.

    python -m benchmarks.edge_streams [--seconds 8] [--rounds 3] [--quick]

Workload: a mix of scenes, not one clip copied into every stream. Each stream plays one of the
scenario clips of `guanjia.scenes` (real object crops from the shared photos on a real street:
cars parking, driving through and being towed, a motorbike and a person entering a lift, a
bicycle dumped by the bins, a lighting change), written once as Motion-JPEG and read back with
`edge.capture`, each with its own camera config (lane, cabin, garbage) and its own
`CameraPipeline` (motion gate, tracker, rules) sharing one detector session, as `edge.app`
runs them. Streams of the same clip start at different frames; a stream loops its clip.

Each round (interleaved, `--rounds`, default 3) measures, on two worker threads (the box has
two cores; ONNX Runtime and OpenCV release the GIL):

1. pipeline capacity: every stream's frames decoded and run through its pipeline as fast as
   possible, recording which frames the motion gate sent to the detector;
2. the limit: the same frames decoded and the same frames inferred (`detector.detect`) with
   no pipeline at all — the decode + inference floor of that exact work;
3. paced: N streams with frames due at 5 fps each (spread over the 200 ms), starting from the
   capacity estimate; N is sustained when, at the end, processing is less than two frame
   intervals behind. The largest sustained N of the trials is the round's figure.

Prints per round and the medians; CPU µs per frame (this process, all threads) beside the
rates; one `RESULT` line per headline figure (see `benchmarks.support.result`).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.support.machine import loadavg
from benchmarks.support.result import BenchResult, emit, make
from benchmarks.support.rounds import Rounds
from edge.actions import LoggingActionSink
from edge.camera_config import CameraConfig, parse_camera_config
from edge.capture import Frame, FrameSource, open_source
from edge.detector import OnnxDetector, load_detector
from edge.model_dir import default_manifest_path, resolve_model_dir
from edge.pipeline import CameraPipeline
from guanjia import scene_clips
from guanjia import scenes as sc

FPS = 5.0
WORKERS = 2
SCENES: list[Callable[[], scene_clips.Scenario]] = [
    sc.car_parks,
    sc.car_drives_through,
    sc.moto_enters_cabin,
    sc.person_enters_cabin,
    sc.bicycle_dumped,
    sc.lighting_change,
    sc.car_towed,
    sc.moto_rides_lift,
]


@dataclass
class Clip:
    """One scene written to disk, and the camera config that watches it."""

    name: str
    config: CameraConfig


def write_clips(folder: Path, count: int = len(SCENES)) -> list[Clip]:
    """Write the first `count` scenes of the mix once; return them with their camera configs."""
    clips = []
    for make_scene in SCENES[:count]:
        scene = make_scene()
        path = scene_clips.write_clip(scene, folder / f"{scene.name}.avi")
        config = parse_camera_config(sc.camera_config(scene, source=str(path)))
        clips.append(Clip(scene.name, config))
    return clips


class Stream:
    """One camera: a looping clip source starting at `offset` frames, and its pipeline."""

    def __init__(self, clip: Clip, offset: int, detector: OnnxDetector | None, number: int) -> None:
        self.clip = clip
        self.source = self._open(offset)
        self.pipeline = (
            CameraPipeline(
                clip.config, detector, LoggingActionSink(), site_id="b", device_id=f"d{number}"
            )
            if detector is not None
            else None
        )

    def _open(self, skip: int) -> FrameSource:
        source = open_source(self.clip.config)
        for _ in range(skip):
            if source.read() is None:
                break
        return source

    def read(self) -> Frame:
        """The next frame, reopening the clip when it ends."""
        frame = self.source.read()
        if frame is None:
            self.source.close()
            self.source = self._open(0)
            frame = self.source.read()
            assert frame is not None, f"{self.clip.name}: empty clip"
        return frame

    def close(self) -> None:
        self.source.close()


def make_streams(clips: list[Clip], n: int, detector: OnnxDetector | None) -> list[Stream]:
    """`n` streams over the mix: stream i plays clip i mod len(clips), later copies offset."""
    return [Stream(clips[i % len(clips)], 7 * (i // len(clips)), detector, i) for i in range(n)]


def _on_workers(streams: list[Stream], work: Callable[[list[Stream], int], None]) -> float:
    threads = [threading.Thread(target=work, args=(streams[k::WORKERS], k)) for k in range(WORKERS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def capacity(
    clips: list[Clip], n: int, frames: int, detector: OnnxDetector
) -> tuple[dict[str, float], list[set[int]]]:
    """Pipelines as fast as possible; frames/s, CPU µs/frame, and each stream's inferred frames."""
    streams = make_streams(clips, n, detector)
    inferred: list[set[int]] = [set() for _ in streams]
    index = {id(s): i for i, s in enumerate(streams)}

    def work(part: list[Stream], _: int) -> None:
        for k in range(frames):
            for stream in part:
                pipeline = stream.pipeline
                assert pipeline is not None
                before = pipeline.stats().detector_calls
                pipeline.process(stream.read().image, 1_800_000_000.0 + k / FPS)
                if pipeline.stats().detector_calls > before:
                    inferred[index[id(stream)]].add(k)

    cpu0 = time.process_time()
    wall = _on_workers(streams, work)
    cpu = time.process_time() - cpu0
    for stream in streams:
        stream.close()
    total = n * frames
    calls = sum(len(s) for s in inferred)
    return {
        "fps": total / wall,
        "cpu_us": cpu / total * 1e6,
        "duty": calls / total,
    }, inferred


def limit(
    clips: list[Clip], n: int, frames: int, detector: OnnxDetector, inferred: list[set[int]]
) -> dict[str, float]:
    """The same frames decoded and the same ones inferred, no pipeline: frames/s, CPU µs/frame."""
    streams = make_streams(clips, n, None)
    index = {id(s): i for i, s in enumerate(streams)}

    def work(part: list[Stream], _: int) -> None:
        for k in range(frames):
            for stream in part:
                image = stream.read().image
                if k in inferred[index[id(stream)]]:
                    detector.detect(image)

    cpu0 = time.process_time()
    wall = _on_workers(streams, work)
    cpu = time.process_time() - cpu0
    for stream in streams:
        stream.close()
    total = n * frames
    return {"fps": total / wall, "cpu_us": cpu / total * 1e6}


def paced(clips: list[Clip], n: int, seconds: float, detector: OnnxDetector) -> float:
    """Run `n` streams with frames due at 5 fps each; seconds behind schedule at the end."""
    streams = make_streams(clips, n, detector)
    frames = int(seconds * FPS)
    start = time.perf_counter() + 0.05
    late = [0.0] * WORKERS

    def work(part: list[Stream], worker: int) -> None:
        for k in range(frames):
            for j, stream in enumerate(part):
                # Spread the streams' frames over the interval, as independent cameras are.
                due = start + (k + (worker + WORKERS * j) / n) / FPS
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                pipeline = stream.pipeline
                assert pipeline is not None
                pipeline.process(stream.read().image, 1_800_000_000.0 + k / FPS)
        late[worker] = time.perf_counter() - (start + frames / FPS)

    _on_workers(streams, work)
    for stream in streams:
        stream.close()
    return max(0.0, *late)


def sustained(
    clips: list[Clip], start_n: int, seconds: float, detector: OnnxDetector, trials: int
) -> tuple[int, list[str]]:
    """The largest N of up to `trials` paced runs that kept up, bisecting from `start_n`."""
    ok_n, failed_n, n, log = 0, 0, max(1, start_n), []
    for _ in range(trials):
        behind = paced(clips, n, seconds, detector)
        ok = behind <= 2 / FPS
        log.append(f"{n}:{'ok' if ok else f'late {behind:.1f}s'}")
        if ok:
            ok_n = n
        else:
            failed_n = n
        if failed_n and failed_n - ok_n <= 1:
            break
        if not failed_n:
            n += max(1, n // 10)
        elif ok_n:
            n = (ok_n + failed_n) // 2
        else:
            n = max(1, int(n * 0.7))
    return ok_n, log


def run(
    seconds: float, rounds: int, frames: int, trials: int, scenes: int = len(SCENES)
) -> list[BenchResult]:
    """Interleave capacity, limit and paced trials `rounds` times; print and return medians."""
    load0 = loadavg()
    detector = load_detector(resolve_model_dir(None), default_manifest_path(), threads=1)
    results = Rounds()
    with tempfile.TemporaryDirectory() as tmp:
        clips = write_clips(Path(tmp), scenes)
        detector.detect(sc.car_parks().frame(20))  # warm-up
        n_probe = 2 * len(clips)  # two copies of every scene for the unpaced passes
        print(f"scenes: {', '.join(c.name for c in clips)}; {WORKERS} worker threads")
        for number in range(rounds):
            cap, inferred = capacity(clips, n_probe, frames, detector)
            lim = limit(clips, n_probe, frames, detector, inferred)
            best, log = sustained(clips, int(cap["fps"] / FPS), seconds, detector, trials)
            results.add("capacity", cap)
            results.add("limit", lim)
            results.add("paced", {"streams": best})
            print(
                f"round {number + 1}: pipeline {cap['fps']:6.1f} fps ({cap['cpu_us']:6.0f} µs"
                f" CPU/frame, {cap['duty']:.2f} inferred) | decode+inference of the same frames"
                f" {lim['fps']:6.1f} fps ({lim['cpu_us']:6.0f} µs) | paced 5 fps trials {log}"
            )
    m = results.median
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    limit_streams = m("limit", "fps") / FPS
    print(
        f"median: {m('paced', 'streams'):.0f} streams sustained at 5 fps; limit"
        f" {limit_streams:.1f} streams (decode + inference of the same frames, 2 threads);"
        f" peak RSS {rss_mb:.0f} MB"
    )
    size = f"{len(clips)} scenes, {n_probe} streams x {frames} frames; paced trials {seconds:g} s"
    common: dict[str, Any] = {
        "benchmark": "edge_streams",
        "rounds": rounds,
        "size": size,
        "loadavg_start": load0,
        "cpu_us_per_item": m("capacity", "cpu_us"),
        "limit_cpu_us_per_item": m("limit", "cpu_us"),
    }
    out = [
        make(
            **common,
            name="640x480 cameras sustained at 5 fps (motion gate on)",
            figure=m("paced", "streams"),
            unit="streams",
            limit=limit_streams,
            limit_name="decode + inference of the same frames, no pipeline, 2 threads",
            target="figure >= 20 streams",
            notes=(
                f"{m('capacity', 'duty'):.2f} of frames inferred; peak RSS {rss_mb:.0f} MB"
                " (target <= 500)"
            ),
        ),
        make(
            **common,
            name="pipeline frames/s, unpaced (motion gate on)",
            figure=m("capacity", "fps"),
            unit="frames/s",
            limit=m("limit", "fps"),
            limit_name="decode + inference of the same frames, no pipeline, 2 threads",
        ),
    ]
    for result in out:
        emit(result)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=8.0, help="Length of a paced trial.")
    parser.add_argument("--frames", type=int, default=40, help="Frames per stream, unpaced.")
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved rounds.")
    parser.add_argument("--trials", type=int, default=3, help="Paced trials per round.")
    parser.add_argument("--scenes", type=int, default=len(SCENES), help="Scenes of the mix.")
    parser.add_argument("--quick", action="store_true", help="5 s trials, 25 frames.")
    parser.add_argument("--smoke", action="store_true", help="Smallest run (not a figure).")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.frames = 5.0, 25
    if args.smoke:
        args.seconds, args.frames, args.rounds, args.trials, args.scenes = 1.0, 3, 1, 1, 2
    run(args.seconds, args.rounds, args.frames, args.trials, args.scenes)


if __name__ == "__main__":
    main()
