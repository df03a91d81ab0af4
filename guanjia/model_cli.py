"""`guanjia model …`: the catalogue and first-run downloads (`list`, `fetch`), and signed
artifacts (`keygen`, `sign`, `verify`, `publish`).

Every failure is one line on stderr, ``error: <file>: <what is wrong>``, exit status 2; no
traceback for bad input. `sign` runs the model on the reference photos (the edge extra) and
records what it finds as the detections every node must reproduce before it switches.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated

import typer

model_app = typer.Typer(
    name="model",
    help="Detector models: the catalogue, downloads, signed artifacts and publishing.",
    no_args_is_help=True,
)


def _fail(message: str) -> typer.Exit:
    # One line whatever the message (a pydantic error spans several).
    typer.echo("error: " + " ".join(message.split()), err=True)
    return typer.Exit(code=2)


@model_app.command()
def keygen(
    out: Annotated[Path, typer.Argument(help="Private key file to create (PEM, mode 0600).")],
) -> None:
    """Make a signing key; print the public key line to pin on nodes and the gateway."""
    from guanjia.artifacts import generate_key

    key = generate_key()
    try:
        key.save(out)
    except FileExistsError as exc:
        raise _fail(f"{out}: exists; refusing to overwrite a signing key") from exc
    except OSError as exc:
        raise _fail(f"{out}: {exc.strerror or exc}") from exc
    public = out.with_name(out.name + ".pub")
    public.write_text(key.public.text() + "\n", encoding="utf-8")
    typer.echo(f"{key.public.text()}  (key id {key.public.key_id}; also in {public})")


@model_app.command()
def sign(  # noqa: PLR0917 - typer maps each CLI option to a parameter
    model: Annotated[Path, typer.Option("--model", help="The ONNX weights.")],
    manifest: Annotated[
        Path, typer.Option("--manifest", help="Model manifest JSON (guanjia.model_manifest/1).")
    ],
    key: Annotated[Path, typer.Option("--key", help="Signing key (from `model keygen`).")],
    frames: Annotated[
        list[Path], typer.Option("--frame", help="A reference JPEG (repeat, 1 to 16).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Artifact file to write (.gjm).")],
    min_edge_version: Annotated[str, typer.Option(help="Oldest node software it runs on.")] = (
        "0.1.0"
    ),
    latency_budget_ms: Annotated[
        float, typer.Option(help="Median inference ms per frame a node may take, at most.")
    ] = 2000.0,
) -> None:
    """Run the model on the reference frames and pack model, manifest, frames and signature."""
    from edge.detector import ModelError, load_detector, load_manifest
    from guanjia.artifacts import (
        ArtifactManifest,
        ReferenceFrame,
        SelfTestSpec,
        build_artifact,
        load_signing_key,
        sha256_file,
    )

    try:
        signing = load_signing_key(key)
        spec = load_manifest(manifest)
    except (ValueError, ModelError) as exc:
        raise _fail(str(exc)) from exc
    if not model.is_file():
        raise _fail(f"{model}: no such file")
    digest = sha256_file(model)
    if digest != spec.sha256:
        raise _fail(
            f"{manifest}: sha256: the manifest names {spec.sha256[:16]}…, {model} is "
            f"{digest[:16]}…; describe the file you sign"
        )
    if not 1 <= len(frames) <= 16:
        raise _fail("--frame: give 1 to 16 reference photos")
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / spec.file
        weights.symlink_to(model.resolve())
        try:
            detector = load_detector(Path(tmp), spec)
        except ModelError as exc:
            raise _fail(str(exc)) from exc
        refs, blobs = [], []
        for index, path in enumerate(frames):
            refs_entry, blob = _reference(detector, path, index)
            refs.append(refs_entry)
            blobs.append(blob)
    built = ArtifactManifest(
        model=spec.model_copy(update={"file": "model.onnx"}),
        size=model.stat().st_size,
        min_edge_version=min_edge_version,
        created=time.time(),
        key_id=signing.public.key_id,
        reference=[ReferenceFrame.model_validate(r) for r in refs],
        selftest=SelfTestSpec(latency_budget_ms=latency_budget_ms),
    )
    try:
        sha = build_artifact(out, manifest=built, model_path=model, frames=blobs, key=signing)
    except (OSError, ValueError) as exc:
        raise _fail(f"{out}: {exc}") from exc
    typer.echo(
        f"{out}: {built.name} {built.version} sha256 {sha} signed by {signing.public.key_id}"
    )


def _reference(detector: object, path: Path, index: int) -> tuple[dict[str, object], bytes]:
    from edge.capture import CaptureError, read_image
    from edge.detector import OnnxDetector

    assert isinstance(detector, OnnxDetector)
    if path.suffix.lower() not in {".jpg", ".jpeg"}:
        raise _fail(f"{path}: reference frames are JPEG files")
    try:
        blob = path.read_bytes()
        frame = read_image(path)
    except (OSError, CaptureError) as exc:
        raise _fail(f"{path}: {exc}") from exc
    found = [
        {
            "class_name": d.class_name,
            "score": round(d.score, 4),
            "box": [round(v, 2) for v in d.box],
        }
        for d in detector.detect(frame)
    ]
    entry: dict[str, object] = {
        "file": f"frames/{index:03d}.jpg",
        "sha256": hashlib.sha256(blob).hexdigest(),
        "size": len(blob),
        "detections": found,
    }
    return entry, blob


def _trusted(keys: list[str], key_files: list[Path]) -> list[object]:
    from guanjia.artifacts import load_public_key, parse_public_key

    trusted: list[object] = []
    for text in keys:
        try:
            trusted.append(parse_public_key(text))
        except ValueError as exc:
            raise _fail(f"--public-key: {exc}") from exc
    for path in key_files:
        try:
            trusted.append(load_public_key(path))
        except ValueError as exc:
            raise _fail(str(exc)) from exc
    if not trusted:
        raise _fail("--public-key or --public-key-file: pin at least one key")
    return trusted


@model_app.command()
def verify(
    artifact: Annotated[Path, typer.Argument(help="The artifact (.gjm).")],
    public_key: Annotated[
        list[str], typer.Option("--public-key", help="Pinned key ed25519:… (repeat).")
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    public_key_file: Annotated[
        list[Path], typer.Option("--public-key-file", help="File with a pinned key (repeat).")
    ] = [],  # noqa: B006
    self_test: Annotated[
        bool, typer.Option("--self-test", help="Also run the model on its reference frames.")
    ] = False,
) -> None:
    """Check signature and members; with --self-test also run the model as a node would."""
    from guanjia.artifacts import ArtifactError, PublicKey, read_artifact

    trusted = [k for k in _trusted(public_key, public_key_file) if isinstance(k, PublicKey)]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            verified = read_artifact(artifact, trusted, Path(tmp) / "a")
        except ArtifactError as exc:
            raise _fail(f"{artifact}: {exc}") from exc
        except OSError as exc:
            raise _fail(f"{artifact}: {exc.strerror or exc}") from exc
        line = (
            f"{artifact}: {verified.manifest.name} {verified.manifest.version} signature ok "
            f"(key {verified.signed_by.key_id}), members ok"
        )
        if self_test:
            from edge.model_update.selftest import SelfTestError, run_self_test

            try:
                report = run_self_test(verified)
            except SelfTestError as exc:
                raise _fail(f"{artifact}: self-test: {exc}") from exc
            line += f", self-test ok ({report.summary()})"
    typer.echo(line)


@model_app.command()
def publish(
    artifact: Annotated[Path, typer.Argument(help="The artifact (.gjm).")],
    gateway: Annotated[str, typer.Option(help="Gateway base URL, e.g. http://gw:8000.")],
    token_env: Annotated[
        str, typer.Option(help="Environment variable holding an admin's bearer token.")
    ] = "GUANJIA_TOKEN",  # noqa: S107 - the name of a variable, not a secret
) -> None:
    """Upload an artifact to the gateway's registry (it checks the signature again)."""
    token = os.environ.get(token_env)
    if not token:
        raise _fail(f"${token_env}: not set; put an admin's bearer token there")
    try:
        data = artifact.read_bytes()
    except OSError as exc:
        raise _fail(f"{artifact}: {exc.strerror or exc}") from exc
    if not gateway.startswith(("http://", "https://")):
        raise _fail("--gateway: an http(s):// URL")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        gateway.rstrip("/") + "/api/models",
        data=data,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:300]
        raise _fail(f"{artifact}: the gateway answered {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise _fail(f"--gateway: {gateway}: {exc}") from exc
    typer.echo(f"{artifact}: published {body['name']} {body['version']} as {body['sha256']}")


@model_app.command("list")
def list_models() -> None:
    """The catalogue: each model and photo, its licence, and whether it is here already."""
    from rich.console import Console
    from rich.table import Table

    from guanjia.assets import AssetError, load_catalog, locate, model_asset, photo_assets

    try:
        catalog = load_catalog()
    except AssetError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    table = Table("name", "file", "licence", "here")
    for name, entry in catalog.models.items():
        found = locate(model_asset(catalog, name)).path
        table.add_row(name, entry.file, entry.licence, str(found) if found else "no")
    for photo, asset in zip(catalog.photos, photo_assets(catalog), strict=True):
        found = locate(asset).path
        table.add_row("demo-photos", photo.file, photo.licence, str(found) if found else "no")
    Console().print(table)


@model_app.command("fetch")
def fetch(
    name: Annotated[str, typer.Argument(help="A model of the catalogue, or demo-photos.")],
    offline: Annotated[
        bool, typer.Option(help="Only look in the mirrors and the cache; never download.")
    ] = False,
) -> None:
    """Make NAME available: found in a mirror or the cache, else downloaded (resumed, sha256
    verified) into the cache. Prints where it is."""
    from rich.console import Console

    from guanjia.assets import (
        PHOTOS,
        AssetError,
        ensure,
        ensure_photos,
        load_catalog,
        model_asset,
        rich_progress,
    )

    console = Console(stderr=True)
    report, close = rich_progress(console)
    try:
        if name == PHOTOS:
            folder = ensure_photos(download=not offline, progress=report)
            close()
            typer.echo(f"demo photos: {folder}")
            return
        outcome = ensure(model_asset(load_catalog(), name), download=not offline, progress=report)
    except AssetError as exc:
        close()
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    close()
    said = {
        "mirror": "already present (local mirror)",
        "cache": "already present (cache)",
        "downloaded": "downloaded, sha256 verified",
    }[outcome.how]
    typer.echo(f"{name}: {outcome.path} — {said}")
