"""Detector calls ÷ frames with the motion gate on, with the same events as with it off.

Runs every scenario clip twice (gate on, gate off) and compares the event streams (id,
phase, seq, category, zone, time). Two sets: the short clips of the test-suite, and the
same scenes with realistic stays (a car parked for 3 minutes, a bike left for 2 minutes)
where most of the time nothing moves — which is what a real camera sees. Target <= 0.25.

    python -m benchmarks.edge_motion_gate [--short-only] [--quick]

A count, not a timing: the figure does not depend on load, so one round is enough.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.support.machine import loadavg
from benchmarks.support.result import emit, make
from edge.actions import LoggingActionSink
from edge.camera_config import parse_camera_config
from edge.detector import OnnxDetector, load_detector
from edge.model_dir import default_manifest_path, resolve_model_dir
from edge.pipeline import CameraPipeline
from guanjia import scene_clips
from guanjia import scenes as sc


def _run(
    clip: scene_clips.Scenario, config: dict[str, Any], detector: OnnxDetector, gate: bool
) -> tuple[list[tuple[str, str, int, str, str, float]], int, int]:
    cfg = parse_camera_config({**config, "motion": {"enabled": gate}})
    pipeline = CameraPipeline(cfg, detector, LoggingActionSink(), site_id="b", device_id="b")
    events = []
    for t, frame in clip.frames():
        for out in pipeline.process(frame, 1_800_000_000.0 + t):
            e = out.event
            events.append(
                (e.event_id, e.phase.value, e.seq, e.category.value, e.zone_id, round(e.ts, 1))
            )
    stats = pipeline.stats()
    return events, stats.detector_calls, stats.frames_processed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--short-only", action="store_true")
    parser.add_argument("--quick", action="store_true", help="The realistic stays only.")
    parser.add_argument("--smoke", action="store_true", help="One short clip (not a figure).")
    args = parser.parse_args(argv)
    load0 = loadavg()
    detector = load_detector(resolve_model_dir(None), default_manifest_path(), threads=1)
    short = [
        (sc.car_parks(), sc.lane_config()),
        (sc.car_parks_occluded(), sc.lane_config()),
        (sc.car_drives_through(), sc.lane_config()),
        (sc.moto_enters_cabin(), sc.cabin_config()),
        (sc.moto_rides_lift(), sc.cabin_config()),
        (sc.person_enters_cabin(), sc.cabin_config()),
        (sc.bicycle_dumped(), sc.garbage_config()),
        (sc.lighting_change(), sc.lane_config()),
    ]
    realistic = [
        (sc.car_parks(park_s=180.0, tail_s=20.0), sc.lane_config()),
        (sc.moto_rides_lift(ride_s=39.0, tail_s=19.0), sc.cabin_config()),
        (
            scene_clips.Scenario(
                "bike_left",
                150.0,
                [
                    scene_clips.Path2D(
                        "bicycle", [(3.0, 640.0, 300.0), (4.0, 150.0, 300.0), (150.0, 150.0, 300.0)]
                    )
                ],
            ),
            sc.garbage_config(),
        ),
        (
            scene_clips.Scenario("lights", 60.0, [], gain=[(20.0, 1.4), (40.0, 1.0)]),
            sc.lane_config(),
        ),
    ]
    sets = [("short test clips", short), ("realistic stays", realistic)]
    if args.short_only:
        sets = sets[:1]
    if args.quick:
        sets = sets[1:]
    if args.smoke:
        sets = [("one short clip", short[2:3])]
    for title, clips in sets:
        calls = frames = 0
        same = True
        print(f"== {title}")
        for clip, config in clips:
            # Both runs at once, one per core: a count, so sharing the CPU changes nothing.
            with ThreadPoolExecutor(2) as pool:
                on = pool.submit(_run, clip, config, detector, True)
                off = pool.submit(_run, clip, config, detector, False)
                (gated, c_on, n), (full, c_off, _) = on.result(), off.result()
            ok = gated == full
            same &= ok
            calls += c_on
            frames += n
            print(
                f"  {clip.name:<20} frames {n:5d}  calls gate on {c_on:5d} off {c_off:5d}"
                f"  ratio {c_on / n:.3f}  events {len(gated):3d} same={ok}"
            )
        print(
            f"  detector calls / frames (gate on): {calls / frames:.3f} (target <= 0.25);"
            f" same events as gate off: {same}"
        )
        if not same:
            raise SystemExit(f"error: {title}: the gate changed the events")
        emit(
            make(
                benchmark="edge_motion_gate",
                name=f"detector calls / frames with the motion gate, {title}",
                figure=calls / frames,
                unit="calls/frame",
                better="lower",
                limit=0.25,
                limit_name="target share of frames inferred",
                limit_kind="budget",
                target="ratio >= 1 (calls/frame <= 0.25)",
                rounds=1,
                size=f"{len(clips)} clips, {frames} frames",
                loadavg_start=load0,
                notes="same events as with the gate off (checked)",
            )
        )


if __name__ == "__main__":
    main()
