"""A facade camera at 20 fps (thrown objects, no detector): CPU per frame, cameras per box.

The drops clip of `guanjia.facade_scenes` (six drops, 19 s, 640x480) is written as one
Motion-JPEG file and read back with `edge.capture` twice in the same run: once decode-only
(the physical limit: a camera's frames must at least be decoded), once decoded and run through
`FacadePipeline`. CPU time per frame (process time, one thread) gives how many 20 fps facade
cameras a 2-core box sustains, next to the decode-only limit. The two are interleaved in
`--rounds` rounds; the medians are reported.

    python -m benchmarks.edge_facade [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from benchmarks.support.machine import loadavg
from benchmarks.support.result import emit, make
from benchmarks.support.rounds import interleave
from edge.camera_config import parse_camera_config
from edge.capture import open_source
from edge.facade_pipeline import FacadePipeline
from guanjia import facade_scenes as fs
from guanjia import scene_clips

CORES = 2


def _cpu_per_frame(clip: Path, *, pipeline: bool) -> tuple[float, int, int]:
    config = parse_camera_config(fs.facade_config(source=str(clip)))
    source = open_source(config)
    facade = FacadePipeline(config, site_id="b", device_id="b") if pipeline else None
    frames = events = 0
    started = time.process_time()
    try:
        while (frame := source.read()) is not None:
            frames += 1
            if facade is not None:
                events += len(facade.process(frame.image, 1e9 + frame.clip_s))
    finally:
        source.close()
    return (time.process_time() - started) * 1000 / max(frames, 1), frames, events


def main(argv: list[str] | None = None) -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved rounds.")
    parser.add_argument("--quick", action="store_true", help="Same as the default (19 s clip).")
    parser.add_argument("--seconds", type=float, default=None, help="Cut the clip to this.")
    parser.add_argument("--smoke", action="store_true", help="2 s, one round (not a figure).")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.seconds = 1, 2.0
    load0 = loadavg()
    counts: dict[str, int] = {}

    def measure(pipeline: bool) -> dict[str, float]:
        ms, frames, events = _cpu_per_frame(clip, pipeline=pipeline)
        counts.update(frames=frames, events=events)
        return {"ms": ms}

    with tempfile.TemporaryDirectory() as tmp:
        scene = fs.drops()
        if args.seconds is not None:
            scene = dataclasses.replace(scene, duration_s=min(scene.duration_s, args.seconds))
        clip = scene_clips.write_clip(scene, Path(tmp) / "facade.avi")
        rounds = interleave(
            args.rounds, {"decode": lambda _: measure(False), "falls": lambda _: measure(True)}
        )
    decode, total = rounds.median("decode", "ms"), rounds.median("falls", "ms")
    frames, events = counts["frames"], counts["events"]
    budget_ms = CORES * 1000.0 / fs.FPS  # CPU ms per frame if one camera took every core
    print(
        f"facade camera 640x480 at {fs.FPS:g} fps, {frames} frames, {events} events (12 = 6 drops)"
    )
    print(
        f"decode only : {decode:6.2f} ms CPU/frame -> limit "
        f"{budget_ms / decode:5.1f} cameras on {CORES} cores"
    )
    print(
        f"decode+falls: {total:6.2f} ms CPU/frame (falls {total - decode:.2f}) -> "
        f"{budget_ms / total:5.1f} cameras"
    )
    print(f"ratio to the decode-only limit: {decode / total:.2f}")
    emit(
        make(
            benchmark="edge_facade",
            name=f"facade cameras at {fs.FPS:g} fps per {CORES} cores (falls detection)",
            figure=budget_ms / total,
            unit="cameras",
            limit=budget_ms / decode,
            limit_name="decode-only CPU per frame of the same clip",
            cpu_us_per_item=total * 1000,
            limit_cpu_us_per_item=decode * 1000,
            rounds=args.rounds,
            size=f"{frames} frames 640x480, {events} events (12 = the 6 drops of the full clip)",
            loadavg_start=load0,
        )
    )


if __name__ == "__main__":
    main()
