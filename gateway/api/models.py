"""The model registry: upload signed artifacts, list them, and the devices' download route.

- `POST /api/models` (admins, `publish_models`): the body is the artifact (.gjm). It is
  streamed to disk within `models.max_artifact_bytes`, verified exactly as a node verifies
  it (allowed members only, sha256 of each, signature by a key in `models.trusted_keys`)
  and stored under its sha256. The same bytes again answer the first record.
- `GET /api/models` (`read_devices`): what is published.
- `GET /api/models/{sha256}/download?site&device&exp&sig`: no bearer token — the short-lived
  link in the device's `model_update` command is the credential (HMAC over artifact, site,
  device and expiry; `gateway.rollouts.links`). Answers Range requests (206), so a node
  resumes a cut download. A bad or expired link is 403 and says nothing more.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from gateway.api.deps import RuntimeDep, require
from gateway.api.params import Limit, Offset
from gateway.api.permissions import Permission
from gateway.auth import Principal
from gateway.rollouts.links import check_link
from gateway.rollouts.records import ArtifactPublic
from gateway.store import ConflictError, NotFoundError
from guanjia.artifacts import ArtifactError, parse_public_key, read_artifact

router = APIRouter(prefix="/api/models", tags=["models"])

UPLOAD_PATH = re.compile(r"/api/models/?")
Sha = Annotated[str, PathParam(pattern=r"^[0-9a-f]{64}$")]
"""An artifact's sha256 in a URL: it names a file under the store, so nothing else passes."""


def artifact_file(store_dir: Path, sha256: str) -> Path:
    """Where an artifact's bytes are kept."""
    return store_dir / f"{sha256}.gjm"


def _verify(path: Path, keys: list[str], max_bytes: int) -> tuple[str, ArtifactPublic]:
    trusted = [parse_public_key(k) for k in keys]
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        verified = read_artifact(path, trusted, Path(tmp) / "a", max_model_bytes=max_bytes)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    m = verified.manifest
    record = ArtifactPublic(
        sha256=digest.hexdigest(),
        name=m.name,
        version=m.version,
        size=path.stat().st_size,
        model_sha256=m.model.sha256,
        key_id=verified.signed_by.key_id,
        min_edge_version=m.min_edge_version,
        created=m.created,
        uploaded_by="",
        uploaded_at=0.0,
    )
    return record.sha256, record


@router.post("", response_model=ArtifactPublic, status_code=201)
async def upload_artifact(
    request: Request,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.PUBLISH_MODELS))],
) -> ArtifactPublic:
    """Publish a signed artifact (the raw .gjm as the body); 422 with the reason when it
    does not verify."""
    settings = runtime.settings.models
    if not settings.trusted_keys:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "models.trusted_keys: no signing key is pinned on this gateway",
        )
    store_dir = settings.store_dir
    await asyncio.to_thread(store_dir.mkdir, parents=True, exist_ok=True)
    incoming = store_dir / f".incoming-{time.time_ns()}"
    size = 0
    try:
        with incoming.open("wb") as handle:
            async for chunk in request.stream():
                size += len(chunk)
                if size > settings.max_artifact_bytes:
                    raise HTTPException(
                        status.HTTP_413_CONTENT_TOO_LARGE,
                        f"artifact over {settings.max_artifact_bytes} bytes",
                    )
                handle.write(chunk)
        try:
            sha, record = await asyncio.to_thread(
                _verify, incoming, settings.trusted_keys, settings.max_artifact_bytes
            )
        except ArtifactError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"artifact: {exc}") from None
        record = record.model_copy(
            update={"uploaded_by": principal.username, "uploaded_at": time.time()}
        )
        target = artifact_file(store_dir, sha)
        existed = target.exists()
        await asyncio.to_thread(shutil.move, incoming, target)
        try:
            stored = await asyncio.to_thread(runtime.store.rollouts.add_artifact, record)
        except ConflictError as exc:
            if not existed:  # no row will ever name these bytes
                target.unlink(missing_ok=True)
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        return stored
    finally:
        incoming.unlink(missing_ok=True)


@router.get("", response_model=list[ArtifactPublic])
async def list_artifacts(
    runtime: RuntimeDep,
    _principal: Annotated[Principal, Depends(require(Permission.READ_DEVICES))],
    offset: Offset = 0,
    limit: Limit = 100,
) -> list[ArtifactPublic]:
    """Published artifacts, newest first."""
    return await asyncio.to_thread(
        runtime.store.rollouts.list_artifacts, offset=offset, limit=limit
    )


@router.get("/{sha256}/download", response_class=FileResponse)
async def download_artifact(
    sha256: Sha,
    runtime: RuntimeDep,
    *,
    site: Annotated[str, Query(max_length=64)],
    device: Annotated[str, Query(max_length=64)],
    exp: Annotated[int, Query(ge=0)],
    sig: Annotated[str, Query(max_length=128)],
) -> FileResponse:
    """The artifact for the device its link names, until the link expires (Range works)."""
    key = runtime.settings.signing_key()
    if (
        check_link(
            key, sha256, site_id=site, device_id=device, expires=exp, sig=sig, now=time.time()
        )
        is not None
    ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "download link invalid or expired")
    try:
        await asyncio.to_thread(runtime.store.rollouts.get_artifact, sha256)
    except NotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found") from None
    path = artifact_file(runtime.settings.models.store_dir, sha256)
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
    return FileResponse(path, media_type="application/octet-stream")
