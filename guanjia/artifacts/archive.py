"""Writing and safely reading artifact tars.

Reading never calls ``tarfile.extract``: each header is checked (regular file, a name on the
allow-list, within its size limit, not seen before) and its bytes are copied by us to a fixed
name under the destination, so no member can write outside it (no ``..``, no absolute path,
no link, no device) and no member can be code. The signature is checked before any member
but artifact.json is trusted, and every member's sha256 and size must match artifact.json.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from guanjia.artifacts.errors import (
    ArtifactFormatError,
    ArtifactIntegrityError,
    ArtifactSignatureError,
)
from guanjia.artifacts.keys import PublicKey, SigningKey, check_signature, encode_signature
from guanjia.artifacts.manifest import FRAME_NAME, ArtifactManifest

MANIFEST_MEMBER = "artifact.json"
SIGNATURE_MEMBER = "artifact.sig"
MODEL_MEMBER = "model.onnx"
MAX_MANIFEST_BYTES = 1 << 20
MAX_SIGNATURE_BYTES = 1 << 10
MAX_FRAME_BYTES = 4 << 20
DEFAULT_MAX_MODEL_BYTES = 256 << 20
_FRAME = re.compile(FRAME_NAME)
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class VerifiedArtifact:
    """An artifact whose signature and members checked out, unpacked in `directory`."""

    manifest: ArtifactManifest
    directory: Path
    signed_by: PublicKey

    @property
    def model_path(self) -> Path:
        """The weights."""
        return self.directory / MODEL_MEMBER

    def frame_path(self, name: str) -> Path:
        """A reference frame by its member name (``frames/000.jpg``)."""
        return self.directory / name


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0  # reproducible bytes: the same inputs sign to the same artifact
    tar.addfile(info, io.BytesIO(data))


def build_artifact(
    out: Path,
    *,
    manifest: ArtifactManifest,
    model_path: Path,
    frames: Sequence[bytes],
    key: SigningKey,
) -> str:
    """Write the signed artifact to `out` (via a temporary file); return its sha256.

    `frames[i]` are the bytes of ``manifest.reference[i]``; sizes and digests are checked so
    a signer cannot sign a manifest that does not describe what is packed.
    """
    if manifest.key_id != key.public.key_id:
        raise ValueError(f"manifest key_id {manifest.key_id} is not the signing key's")
    if len(frames) != len(manifest.reference):
        raise ValueError("one frame per reference entry")
    if sha256_file(model_path) != manifest.model.sha256:
        raise ValueError(f"{model_path}: sha256 differs from the manifest's model.sha256")
    for frame, ref in zip(frames, manifest.reference, strict=True):
        if hashlib.sha256(frame).hexdigest() != ref.sha256 or len(frame) != ref.size:
            raise ValueError(f"{ref.file}: bytes differ from the manifest entry")
    body = json.dumps(manifest.model_dump(mode="json"), indent=1, sort_keys=True).encode()
    tmp = out.with_name(out.name + ".partial")
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, MANIFEST_MEMBER, body)
        _add(tar, SIGNATURE_MEMBER, encode_signature(key.sign(body)))
        info = tarfile.TarInfo(MODEL_MEMBER)
        info.size = model_path.stat().st_size
        info.mode, info.mtime = 0o644, 0
        with model_path.open("rb") as handle:
            tar.addfile(info, handle)
        for frame, ref in zip(frames, manifest.reference, strict=True):
            _add(tar, ref.file, frame)
    tmp.replace(out)
    return sha256_file(out)


def _limit(name: str, max_model_bytes: int) -> int:
    if name == MANIFEST_MEMBER:
        return MAX_MANIFEST_BYTES
    if name == SIGNATURE_MEMBER:
        return MAX_SIGNATURE_BYTES
    if name == MODEL_MEMBER:
        return max_model_bytes
    if _FRAME.match(name):
        return MAX_FRAME_BYTES
    raise ArtifactFormatError(
        f"member {name!r} is not allowed (artifact.json, artifact.sig, model.onnx, "
        "frames/NNN.jpg only; artifacts never carry code)"
    )


def _copy(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> str:
    source = tar.extractfile(member)
    if source is None:  # pragma: no cover - regular files always have a stream
        raise ArtifactFormatError(f"member {member.name!r} has no data")
    digest = hashlib.sha256()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as handle:
        for chunk in iter(lambda: source.read(_CHUNK), b""):
            digest.update(chunk)
            handle.write(chunk)
    return digest.hexdigest()


def read_artifact(
    path: Path,
    trusted: Sequence[PublicKey],
    dest: Path,
    *,
    max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES,
) -> VerifiedArtifact:
    """Check and unpack the artifact at `path` into the empty or new directory `dest`.

    Raises an `ArtifactError` subclass with a one-line reason; `dest` is removed then.
    """
    dest.mkdir(parents=True, exist_ok=True)
    try:
        return _read(path, list(trusted), dest, max_model_bytes)
    except Exception:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _unpack(path: Path, dest: Path, max_model_bytes: int) -> dict[str, tuple[str, int]]:
    """Copy each allowed member to dest/<its name>; (sha256, size) by name."""
    digests: dict[str, tuple[str, int]] = {}
    try:
        opened = tarfile.open(path, mode="r:")  # noqa: SIM115 - closed by the with below
    except tarfile.TarError as exc:
        raise ArtifactFormatError(f"not an artifact (uncompressed tar): {exc}") from exc
    try:
        with opened as tar:
            for member in tar:
                name = member.name
                if not member.isreg():
                    raise ArtifactFormatError(f"member {name!r} is not a regular file")
                if name in digests:
                    raise ArtifactFormatError(f"member {name!r} appears twice")
                limit = _limit(name, max_model_bytes)
                if member.size > limit:
                    raise ArtifactFormatError(
                        f"member {name!r} is {member.size} bytes; at most {limit}"
                    )
                digests[name] = (_copy(tar, member, dest / name), member.size)
    except (tarfile.TarError, EOFError) as exc:
        raise ArtifactFormatError(f"damaged or truncated artifact: {exc}") from exc
    return digests


def _read(
    path: Path, trusted: list[PublicKey], dest: Path, max_model_bytes: int
) -> VerifiedArtifact:
    digests = _unpack(path, dest, max_model_bytes)
    if MANIFEST_MEMBER not in digests:
        raise ArtifactFormatError("artifact.json is missing")
    if SIGNATURE_MEMBER not in digests:
        raise ArtifactSignatureError("unsigned artifact (no artifact.sig): refused")
    body = (dest / MANIFEST_MEMBER).read_bytes()
    key = check_signature((dest / SIGNATURE_MEMBER).read_bytes(), body, trusted)
    try:
        manifest = ArtifactManifest.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        first = exc.errors(include_url=False)[0] if isinstance(exc, ValidationError) else None
        where = ".".join(str(p) for p in first["loc"]) if first else "(json)"
        what = first["msg"] if first else str(exc)
        raise ArtifactFormatError(f"artifact.json: {where}: {what}") from exc
    expected = {MODEL_MEMBER: (manifest.model.sha256, manifest.size)}
    expected |= {ref.file: (ref.sha256, ref.size) for ref in manifest.reference}
    extra = set(digests) - set(expected) - {MANIFEST_MEMBER, SIGNATURE_MEMBER}
    if extra:
        raise ArtifactFormatError(f"members not named by artifact.json: {sorted(extra)}")
    for name, (sha, size) in expected.items():
        if name not in digests:
            raise ArtifactIntegrityError(f"{name} is missing (named by artifact.json)")
        got_sha, got_size = digests[name]
        if got_size != size:
            raise ArtifactIntegrityError(f"{name} is {got_size} bytes; artifact.json says {size}")
        if got_sha != sha:
            raise ArtifactIntegrityError(
                f"{name} has sha256 {got_sha[:16]}…; artifact.json says {sha[:16]}… (tampered)"
            )
    return VerifiedArtifact(manifest=manifest, directory=dest, signed_by=key)
