"""Signed artifacts of the real YOLOX-Nano for tests and benchmarks (never shipped).

`sign_real` packs a model with reference photos; the expected detections come from running
`detections_from` (the good model by default), so a broken model packed with them fails its
self-test exactly as a node would see it. `repack` rewrites an artifact's members to tamper.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from contract import Manifest
from edge.capture import read_image
from edge.detector import OnnxDetector
from edge.model_dir import default_manifest_path
from guanjia.artifacts import (
    ArtifactManifest,
    ExpectedDetection,
    ReferenceFrame,
    SelfTestSpec,
    SigningKey,
    build_artifact,
    sha256_file,
)

PHOTOS = ("000000423617.jpg", "dog.jpg")


def base_manifest() -> Manifest:
    """The catalogue manifest of yolox_nano."""
    return Manifest.model_validate_json(default_manifest_path().read_text(encoding="utf-8"))


def sign_real(
    out: Path,
    key: SigningKey,
    *,
    model: Path,
    photos: Sequence[Path],
    detections_from: OnnxDetector,
    version: str = "2.0.0",
    manifest: Manifest | None = None,
    selftest: SelfTestSpec | None = None,
    min_edge_version: str = "0.1.0",
) -> str:
    """Sign `model` (its sha256 and size) with `photos`; return the artifact's sha256."""
    spec = (manifest or base_manifest()).model_copy(
        update={"file": "model.onnx", "sha256": sha256_file(model), "version": version}
    )
    refs, blobs = [], []
    for index, photo in enumerate(photos):
        blob = photo.read_bytes()
        found = detections_from.detect(read_image(photo))
        refs.append(
            ReferenceFrame(
                file=f"frames/{index:03d}.jpg",
                sha256=hashlib.sha256(blob).hexdigest(),
                size=len(blob),
                detections=[
                    ExpectedDetection(class_name=d.class_name, score=d.score, box=d.box)
                    for d in found
                ],
            )
        )
        blobs.append(blob)
    built = ArtifactManifest(
        model=spec,
        size=model.stat().st_size,
        min_edge_version=min_edge_version,
        created=time.time(),
        key_id=key.public.key_id,
        reference=refs,
        selftest=selftest or SelfTestSpec(),
    )
    return build_artifact(out, manifest=built, model_path=model, frames=blobs, key=key)


def repack(
    source: Path,
    out: Path,
    change: Callable[[str, bytes], bytes | None],
    extra: Sequence[tarfile.TarInfo | tuple[str, bytes]] = (),
) -> Path:
    """Copy `source` to `out`, passing each member through `change` (None drops it)."""
    with tarfile.open(source, "r:") as src, tarfile.open(out, "w") as dst:
        for member in src:
            handle = src.extractfile(member)
            assert handle is not None
            data = change(member.name, handle.read())
            if data is None:
                continue
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
        for item in extra:
            if isinstance(item, tarfile.TarInfo):
                dst.addfile(item)
            else:
                name, data = item
                info = tarfile.TarInfo(name)
                info.size = len(data)
                dst.addfile(info, io.BytesIO(data))
    return out


def broken_model(model: Path, out: Path) -> Path:
    """YOLOX-Nano with a band of its weights zeroed: it still loads and runs (the band lies
    inside one initializer's raw data), and finds nothing on the reference photos."""
    data = bytearray(model.read_bytes())
    start = len(data) // 5
    data[start : start + 400_000] = bytes(400_000)
    out.write_bytes(bytes(data))
    return out
