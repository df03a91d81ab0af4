"""First-run assets: the detector weights and the demo's photos, pinned by URL and sha256.

The catalogue is ``models/catalog.yaml``. A file is looked for, in order, in

1. a local mirror: ``$GUANJIA_DATA_DIR``, else ``../shared`` beside the checkout, laid out as
   ``models/FILE`` and ``testdata/images/FILE`` (``$GUANJIA_MODEL_DIR`` and
   ``$GUANJIA_TESTDATA_DIR`` name those two folders directly and come first);
2. the user cache (``$GUANJIA_CACHE_DIR``, else the platform's, e.g. ``~/.cache/guanjia``);

and only then downloaded into the cache with pooch (sha256 verified before the file is
moved into place), from its official URL or, with ``$GUANJIA_DOWNLOAD_URL``, from a mirror
keeping the same layout. An interrupted download resumes from its ``.part`` file. A file in
a mirror whose sha256 differs is ignored (and named in the error if nothing else is found).
Every failure is one `AssetError` line saying which file to put where; never a traceback.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console

_REPO_ROOT = Path(__file__).resolve().parent.parent
_CHECKOUT_CATALOG = _REPO_ROOT / "models" / "catalog.yaml"
CATALOG_PATH = (
    _CHECKOUT_CATALOG
    if _CHECKOUT_CATALOG.is_file()
    else Path(__file__).resolve().parent / "catalog.yaml"  # the copy in the wheel
)
DATA_ENV = "GUANJIA_DATA_DIR"
CACHE_ENV = "GUANJIA_CACHE_DIR"
DOWNLOAD_ENV = "GUANJIA_DOWNLOAD_URL"
MODEL_DIR_ENV = "GUANJIA_MODEL_DIR"
PHOTOS_DIR_ENV = "GUANJIA_TESTDATA_DIR"
PHOTOS = "demo-photos"
"""The name `guanjia model fetch` knows the photo set by."""
TIMEOUT_S = 30.0
CHUNK = 256 * 1024

Kind = Literal["models", "testdata/images"]


class AssetError(RuntimeError):
    """An asset cannot be found or fetched; the message is one line saying what to do."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str = Field(pattern=r"^[\w.-]+$")
    url: str = Field(pattern=r"^https://")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    licence: str
    attribution: str


class ModelEntry(_Entry):
    """A model's weights and where its contract (manifest) is."""

    size: int = Field(gt=0)
    official: str | None = None
    manifest: str
    input: str
    output: str
    class_map: str


class PhotoEntry(_Entry):
    """One photo the demo's clips are cut from."""

    used_for: str


class Catalog(BaseModel):
    """``models/catalog.yaml``."""

    model_config = ConfigDict(extra="forbid")

    schema_: Literal["guanjia.assets/1"] = Field(alias="schema")
    models: dict[str, ModelEntry]
    photos: list[PhotoEntry]


def load_catalog(path: Path = CATALOG_PATH) -> Catalog:
    """The catalogue, validated; AssetError (one line) if it is not readable or valid."""
    try:
        return Catalog.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise AssetError(f"{path}: cannot read the asset catalogue: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise AssetError(f"{path}: {where}: {first['msg']}") from None


@dataclass(frozen=True)
class Asset:
    """One file to have: where it belongs in a mirror, where it comes from, its sha256."""

    kind: Kind
    file: str
    url: str
    sha256: str

    @property
    def relative(self) -> str:
        """Its path inside a mirror or the cache."""
        return f"{self.kind}/{self.file}"


def model_asset(catalog: Catalog, name: str) -> Asset:
    """The weights of model `name`; AssetError listing the known names."""
    entry = catalog.models.get(name)
    if entry is None:
        known = ", ".join(sorted(catalog.models))
        raise AssetError(f"{name}: not in the catalogue; known models: {known}, and {PHOTOS}")
    return Asset("models", entry.file, entry.url, entry.sha256)


def photo_assets(catalog: Catalog) -> list[Asset]:
    """Every photo of the demo's clips."""
    return [Asset("testdata/images", p.file, p.url, p.sha256) for p in catalog.photos]


# -- where to look ------------------------------------------------------------------------


def cache_dir() -> Path:
    """``$GUANJIA_CACHE_DIR``, else the platform's user cache dir for guanjia."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("guanjia"))


def mirror_dirs(kind: Kind) -> list[Path]:
    """Folders that may already hold files of `kind`, most specific first."""
    direct = os.environ.get(MODEL_DIR_ENV if kind == "models" else PHOTOS_DIR_ENV)
    # An explicit mirror replaces the default one (no surprise fallback to ../shared).
    root = Path(os.environ.get(DATA_ENV) or _REPO_ROOT.parent / "shared")
    return ([Path(direct)] if direct else []) + [root / kind]


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Found:
    """Where an asset was found, and mirror copies refused for a wrong sha256."""

    path: Path | None = None
    refused: tuple[Path, ...] = ()


def locate(asset: Asset) -> Found:
    """The first verified copy in a mirror or the cache (no download)."""
    refused: list[Path] = []
    for folder in [*mirror_dirs(asset.kind), cache_dir() / asset.kind]:
        candidate = folder / asset.file
        if candidate.is_file():
            if sha256_of(candidate) == asset.sha256:
                return Found(candidate, tuple(refused))
            refused.append(candidate)
    return Found(None, tuple(refused))


def download_url(asset: Asset) -> str:
    """Its official URL, or the same file under ``$GUANJIA_DOWNLOAD_URL``."""
    base = os.environ.get(DOWNLOAD_ENV)
    return f"{base.rstrip('/')}/{asset.relative}" if base else asset.url


def where_to_put(assets: list[Asset]) -> str:
    """The one-line advice for a machine without network."""
    target = cache_dir()
    names = ", ".join(a.relative for a in assets)
    return (
        f"put {names} (sha256 in models/catalog.yaml) under {target}, or set {DATA_ENV} to "
        "a folder holding them (models/, testdata/images/)"
    )


# -- downloading -------------------------------------------------------------------------


Progress = Callable[[str, int, int | None], None]
"""Told (file name, bytes so far, total or None) as a download goes."""


class ResumingDownloader:
    """A pooch downloader (stdlib HTTP) that continues a ``.part`` file with a Range request
    and reports progress; pooch verifies the sha256 of what it returns."""

    def __init__(self, part: Path, progress: Progress | None) -> None:
        self.part = part
        self.progress = progress

    def __call__(self, url: str, output_file: Any, pooch: Any, check_only: bool = False) -> None:
        """Fetch `url` into `output_file` (a path pooch moves into place once verified)."""
        self.part.parent.mkdir(parents=True, exist_ok=True)
        have = self.part.stat().st_size if self.part.is_file() else 0
        headers = {"User-Agent": "guanjia-assets"}
        if have:
            headers["Range"] = f"bytes={have}-"
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - https or a mirror
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            resumed = have > 0 and response.status == 206
            if not resumed:
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with self.part.open("ab" if resumed else "wb") as out:
                done = have
                while block := response.read(CHUNK):
                    out.write(block)
                    done += len(block)
                    if self.progress is not None:
                        self.progress(Path(str(output_file)).name, done, total)
        if total is not None and done < total:
            # Kept: the next attempt resumes from here.
            raise OSError(f"the connection dropped after {done:,} of {total:,} bytes")
        # pooch checks the sha256 of output_file; a bad download must not be resumed later.
        shutil.move(self.part, output_file)


def _retrieve(asset: Asset, progress: Progress | None) -> Path:
    import pooch

    pooch.get_logger().setLevel("WARNING")
    folder = cache_dir() / asset.kind
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f".{asset.file}.part"
    url = download_url(asset)
    try:
        fetched = pooch.retrieve(
            url,
            known_hash=f"sha256:{asset.sha256}",
            fname=asset.file,
            path=folder,
            downloader=ResumingDownloader(part, progress),
            progressbar=False,
        )
    except urllib.error.HTTPError as exc:
        raise AssetError(
            f"{asset.relative}: {url} answered HTTP {exc.code}; {where_to_put([asset])}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        if part.is_file():
            reason = f"{reason}; {part.stat().st_size:,} bytes kept, the next try resumes"
        raise AssetError(
            f"{asset.relative}: cannot download {url} ({reason}); {where_to_put([asset])}"
        ) from None
    except ValueError as exc:  # pooch: the sha256 differs
        part.unlink(missing_ok=True)
        raise AssetError(
            f"{asset.relative}: the file from {url} has the wrong sha256 ({exc}); "
            "removed it, nothing was used"
        ) from None
    return Path(fetched)


@dataclass
class Outcome:
    """What `ensure` did for one asset."""

    path: Path
    how: Literal["mirror", "cache", "downloaded"]


def ensure(asset: Asset, *, download: bool = True, progress: Progress | None = None) -> Outcome:
    """A verified local copy of `asset`: found, or (with `download`) fetched into the cache."""
    found = locate(asset)
    if found.path is not None:
        how: Literal["mirror", "cache"] = (
            "cache" if found.path.is_relative_to(cache_dir()) else "mirror"
        )
        return Outcome(found.path, how)
    if not download:
        bad = (
            f" ({', '.join(map(str, found.refused))} has the wrong sha256)" if found.refused else ""
        )
        raise AssetError(f"{asset.relative}: not found{bad}; {where_to_put([asset])}")
    return Outcome(_retrieve(asset, progress), "downloaded")


def ensure_model(
    name: str = "yolox_nano", *, download: bool = True, progress: Progress | None = None
) -> Path:
    """The folder holding model `name`'s weights (what `--model-dir` takes)."""
    return ensure(
        model_asset(load_catalog(), name), download=download, progress=progress
    ).path.parent


def ensure_photos(*, download: bool = True, progress: Progress | None = None) -> Path:
    """A folder holding every demo photo: a mirror that has them all, else the cache (filled
    from partial mirrors and downloads)."""
    assets = photo_assets(load_catalog())
    for folder in mirror_dirs("testdata/images"):
        if all(
            (folder / a.file).is_file() and sha256_of(folder / a.file) == a.sha256 for a in assets
        ):
            return folder
    target = cache_dir() / "testdata/images"
    for asset in assets:
        outcome = ensure(asset, download=download, progress=progress)
        if outcome.path.parent != target:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(outcome.path, target / asset.file)
    return target


def rich_progress(console: Console) -> tuple[Progress, Callable[[], None]]:
    """A rich progress bar for downloads, and the function that closes it."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        TextColumn,
        TransferSpeedColumn,
    )
    from rich.progress import Progress as Bar

    bar = Bar(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=False,
    )
    tasks: dict[str, Any] = {}

    def report(name: str, done: int, total: int | None) -> None:
        if name not in tasks:
            bar.start()
            tasks[name] = bar.add_task(f"downloading {name}", total=total)
        bar.update(tasks[name], completed=done, total=total)

    return report, bar.stop
