"""A small signed artifact whose "model" is a few bytes: for registry and API tests, which
check signatures and members but never run the model (the real one is tests.support.artifacts)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from contract import Manifest
from edge.model_dir import default_manifest_path
from guanjia.artifacts import ArtifactManifest, ReferenceFrame, SigningKey, build_artifact

JPEG = b"\xff\xd8\xff\xe0" + bytes(200) + b"\xff\xd9"


def tiny_artifact(out: Path, key: SigningKey, version: str = "9.9.9") -> str:
    """Write a signed artifact to `out`; return its sha256."""
    weights = out.with_suffix(".onnx")
    weights.write_bytes(b"not a real model " + version.encode())
    spec = Manifest.model_validate_json(default_manifest_path().read_text(encoding="utf-8"))
    spec = spec.model_copy(
        update={
            "file": "model.onnx",
            "version": version,
            "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        }
    )
    manifest = ArtifactManifest(
        model=spec,
        size=weights.stat().st_size,
        created=time.time(),
        key_id=key.public.key_id,
        reference=[
            ReferenceFrame(
                file="frames/000.jpg",
                sha256=hashlib.sha256(JPEG).hexdigest(),
                size=len(JPEG),
                detections=[],
            )
        ],
    )
    return build_artifact(out, manifest=manifest, model_path=weights, frames=[JPEG], key=key)
