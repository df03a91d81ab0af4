"""Signed model artifacts: the one way a model reaches an edge node.

An artifact is an uncompressed tar of exactly these members, nothing else (never code):

    artifact.json   the `ArtifactManifest` (model manifest, sizes, reference frames, budget)
    artifact.sig    detached Ed25519 signature of artifact.json's bytes (base64, one line)
    model.onnx      the weights; their sha256 and size are in artifact.json
    frames/NNN.jpg  reference photos; their sha256 and expected detections are in artifact.json

The signature covers artifact.json, which pins the sha256 of every other member, so one
signature covers the whole artifact. This package imports only the standard library,
pydantic and `cryptography` (edge and gateway both verify with it), never edge or gateway.

Exception tree::

    ArtifactError (ValueError)
    ├── ArtifactFormatError     not a tar, unknown/duplicate/oversized member, bad manifest
    ├── ArtifactIntegrityError  a member's sha256 or size differs from artifact.json
    └── ArtifactSignatureError  unsigned, bad signature, or signed by no pinned key
"""

from guanjia.artifacts.archive import (
    MODEL_MEMBER,
    VerifiedArtifact,
    build_artifact,
    read_artifact,
    sha256_file,
)
from guanjia.artifacts.errors import (
    ArtifactError,
    ArtifactFormatError,
    ArtifactIntegrityError,
    ArtifactSignatureError,
)
from guanjia.artifacts.keys import (
    PublicKey,
    SigningKey,
    generate_key,
    load_public_key,
    load_signing_key,
    parse_public_key,
)
from guanjia.artifacts.manifest import (
    ARTIFACT_SCHEMA,
    ArtifactManifest,
    ExpectedDetection,
    ReferenceFrame,
    SelfTestSpec,
    version_tuple,
)
from guanjia.artifacts.selftest import FrameOutcome, compare_detections

__all__ = [
    "ARTIFACT_SCHEMA",
    "MODEL_MEMBER",
    "ArtifactError",
    "ArtifactFormatError",
    "ArtifactIntegrityError",
    "ArtifactManifest",
    "ArtifactSignatureError",
    "ExpectedDetection",
    "FrameOutcome",
    "PublicKey",
    "ReferenceFrame",
    "SelfTestSpec",
    "SigningKey",
    "VerifiedArtifact",
    "build_artifact",
    "compare_detections",
    "generate_key",
    "load_public_key",
    "load_signing_key",
    "parse_public_key",
    "read_artifact",
    "sha256_file",
    "version_tuple",
]
