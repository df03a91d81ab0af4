"""`guanjia edge …`: run the detector on one image, or replay a clip through a camera pipeline.

Used by tests and by people tuning a site. Heavy imports (cv2, onnxruntime) happen inside the
commands so `guanjia --help` stays fast. Errors (bad config, missing model, unreadable clip)
exit with status 2 and one clear line on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

edge_app = typer.Typer(
    name="edge", help="Edge node: detector, replay, live run.", no_args_is_help=True
)

ModelDirOption = Annotated[
    Path | None,
    typer.Option(
        "--model-dir",
        help="Directory with the weights (default: $GUANJIA_MODEL_DIR, else ../shared/models).",
    ),
]
ManifestOption = Annotated[
    Path | None,
    typer.Option("--manifest", help="Model manifest JSON (default: models/yolox_nano)."),
]


IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
"""What `edge detect FOLDER` reads from a folder."""


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


@edge_app.command()
def detect(
    image: Annotated[
        Path, typer.Argument(help="An image file (JPEG, PNG, …) or a folder of them.")
    ],
    model_dir: ModelDirOption = None,
    manifest: ManifestOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    threads: Annotated[int, typer.Option(help="ONNX Runtime threads.")] = 1,
) -> None:
    """Print the detections of an image, or of each image of a folder (with its file name);
    boxes in pixels of the original image."""
    from edge.capture import CaptureError, read_image
    from edge.detector import ModelError, load_detector, load_manifest
    from edge.model_dir import ModelDirError, default_manifest_path, resolve_model_dir

    folder = image.is_dir()
    images = (
        sorted(p for p in image.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if folder
        else [image]
    )
    if not images:
        raise _fail(f"{image}: a folder with no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    try:
        spec = load_manifest(manifest or default_manifest_path())
        detector = load_detector(resolve_model_dir(model_dir, weights=spec.file), spec, threads)
    except (ModelError, ModelDirError) as exc:
        raise _fail(str(exc)) from exc
    for path in images:
        try:
            frame = read_image(path)
        except CaptureError as exc:
            if not folder:
                raise _fail(str(exc)) from exc
            typer.echo(f"skipped {path.name}: {exc}", err=True)
            continue
        for det in detector.detect(frame):
            row: dict[str, object] = {"image": path.name} if folder else {}
            row |= {
                "class": det.class_name,
                "category": det.category.value if det.category else None,
                "score": round(det.score, 4),
                "box": [round(v, 1) for v in det.box],
            }
            if as_json:
                typer.echo(json.dumps(row, ensure_ascii=False))
            else:
                name = f"{path.name:<20} " if folder else ""
                typer.echo(
                    f"{name}{det.class_name:<14} {row['category'] or '-':<17} "
                    f"{det.score:.3f} {row['box']}"
                )


@edge_app.command()
def replay(  # noqa: PLR0917 - typer maps each CLI option to a parameter
    clip: Annotated[Path, typer.Argument(help="A video file or a folder of frames.")],
    config: Annotated[Path, typer.Option("--config", help="Camera YAML.")],
    model_dir: ModelDirOption = None,
    manifest: ManifestOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="The contract's JSON, one per line.")] = (
        False
    ),
    start: Annotated[
        float, typer.Option("--start", help="Epoch of the clip's first frame (simulated time).")
    ] = 0.0,
    fps: Annotated[
        float | None, typer.Option(help="Frame rate of a folder of frames (default: config fps).")
    ] = None,
    site_id: Annotated[str, typer.Option(help="site_id of the events.")] = "replay",
    device_id: Annotated[str, typer.Option(help="device_id of the events.")] = "replay",
    snapshots: Annotated[
        Path | None, typer.Option(help="Write each event's JPEG into this folder.")
    ] = None,
) -> None:
    """Run the whole pipeline on a clip in simulated time and print every DetectionEvent.

    Frames are processed as fast as the CPU allows; an event's time is START + the frame's
    position in the clip, so two replays of the same clip give the same events and ids.
    """
    from contract import encode
    from edge.actions import LoggingActionSink
    from edge.camera_config import CameraConfigError, load_camera_config
    from edge.capture import CaptureError, open_source
    from edge.detector import ModelError, load_detector, load_manifest
    from edge.model_dir import ModelDirError, default_manifest_path, resolve_model_dir
    from edge.pipeline import CameraPipeline

    try:
        # The clip on the command line is the source: the config need not name one.
        camera = load_camera_config(config, source=str(clip))
        spec = load_manifest(manifest or default_manifest_path())
        detector = load_detector(
            resolve_model_dir(model_dir, weights=spec.file), spec, camera.detector_threads
        )
        source = open_source(camera, native_fps=fps)
    except (CameraConfigError, ModelError, ModelDirError, CaptureError) as exc:
        raise _fail(str(exc)) from exc
    if source.live:
        source.close()
        raise _fail(f"{clip} is a live source; replay needs a video file or a folder")
    pipeline = CameraPipeline(
        camera, detector, LoggingActionSink(), site_id=site_id, device_id=device_id
    )
    if snapshots:
        snapshots.mkdir(parents=True, exist_ok=True)
    try:
        while (frame := source.read()) is not None:
            for out in pipeline.process(frame.image, start + frame.clip_s):
                if snapshots and out.snapshot and out.event.snapshot:
                    path = snapshots / f"{out.event.snapshot.snapshot_id}.jpg"
                    path.write_bytes(out.snapshot)
                ev = out.event
                if as_json:
                    typer.echo(encode(ev).decode())
                else:
                    typer.echo(
                        f"{ev.ts:.1f} {ev.phase.value:<6} {ev.category.value:<18} "
                        f"{ev.zone_id} track {ev.track_id} {ev.object_class} "
                        f"dwell {ev.dwell_s:.1f}s {ev.event_id}"
                    )
    finally:
        source.close()
    stats, cap = pipeline.stats(), source.stats()
    typer.echo(
        f"frames {stats.frames_processed} (dropped {cap.frames_dropped}, corrupt "
        f"{cap.corrupt_frames}), detector calls {stats.detector_calls} "
        f"(duty {stats.detector_duty:.2f}), events {stats.events_published}",
        err=True,
    )


@edge_app.command()
def run(
    config: Annotated[Path, typer.Option("--config", help="Node YAML (NODE.yaml).")],
    exit_when_clips_end: Annotated[
        bool,
        typer.Option(
            "--exit-when-clips-end",
            help="Exit once every camera is a finished clip and the outbox has drained.",
        ),
    ] = False,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
) -> None:
    """Run the edge node: cameras → vision → durable outbox → MQTT, until SIGTERM."""
    import logging

    from edge.app import NodeStartError, RunOptions, run_node
    from edge.node_config import NodeConfigError
    from edge.outbox import OutboxError
    from guanjia import __version__

    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code = run_node(
            config,
            RunOptions(exit_when_clips_end=exit_when_clips_end),
            software_version=__version__,
        )
    except (NodeConfigError, NodeStartError, OutboxError) as exc:
        raise _fail(str(exc)) from exc
    raise typer.Exit(code=code)
