"""First-run assets: the catalogue pins each file; `guanjia model fetch` finds a mirror copy,
else downloads into the cache from a (local, here) HTTP server, resumes a cut download,
verifies the sha256, and without network says in one line which file to put where."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from guanjia import assets
from tests.conftest import missing
from tests.support.http_files import FileServer

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


@pytest.fixture
def shared() -> Path:
    if not (SHARED / "models" / "yolox_nano.onnx").is_file():
        missing(f"the shared model and photos ({SHARED})")
    return SHARED


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache and an empty mirror: nothing is found without a download."""
    for name in (assets.MODEL_DIR_ENV, assets.PHOTOS_DIR_ENV, assets.DOWNLOAD_ENV):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "mirror").mkdir()
    monkeypatch.setenv(assets.DATA_ENV, str(tmp_path / "mirror"))
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path


def test_catalogue_pins_every_file() -> None:
    catalog = assets.load_catalog()
    assert set(catalog.models) == {"yolox_nano"}
    model = catalog.models["yolox_nano"]
    manifest = (assets.CATALOG_PATH.parent / model.manifest).read_text()
    assert model.sha256 in manifest  # catalogue and manifest agree
    assert model.file in manifest
    from guanjia.scene_photos import needed_photos

    assert {p.file for p in catalog.photos} == needed_photos()
    for photo in catalog.photos:
        assert photo.licence
        assert photo.attribution


def test_mirror_copies_match_the_catalogue(shared: Path) -> None:
    catalog = assets.load_catalog()
    for asset in [assets.model_asset(catalog, "yolox_nano"), *assets.photo_assets(catalog)]:
        assert assets.sha256_of(shared / asset.relative) == asset.sha256, asset.file


def test_download_resume_and_reuse(isolated: Path, shared: Path, monkeypatch) -> None:
    asset = assets.model_asset(assets.load_catalog(), "yolox_nano")
    with FileServer(shared) as server:
        monkeypatch.setenv(assets.DOWNLOAD_ENV, server.base_url)
        server.behaviour.cut_after = 1_000_000  # the first attempt drops after 1 MB
        server.behaviour.cut_first = 1
        with pytest.raises(assets.AssetError, match=r"models/yolox_nano\.onnx: cannot download"):
            assets.ensure(asset)
        part = isolated / "cache" / "models" / ".yolox_nano.onnx.part"
        assert part.stat().st_size == 1_000_000
        seen: list[int] = []
        outcome = assets.ensure(asset, progress=lambda name, done, total: seen.append(done))
        assert outcome.how == "downloaded"
        assert outcome.path == isolated / "cache" / "models" / "yolox_nano.onnx"
        assert assets.sha256_of(outcome.path) == asset.sha256
        assert server.behaviour.requests == [None, "bytes=1000000-"]  # resumed, not restarted
        assert server.behaviour.bytes_sent == 3_660_092
        assert seen[-1] == 3_660_092
        assert not part.exists()
        again = assets.ensure(asset)
        assert again.how == "cache"
        assert len(server.behaviour.paths) == 2  # nothing fetched the second time


def test_wrong_bytes_are_refused_and_removed(isolated: Path, monkeypatch) -> None:
    fake = isolated / "site" / "models"
    fake.mkdir(parents=True)
    (fake / "yolox_nano.onnx").write_bytes(b"not a model" * 1000)
    asset = assets.model_asset(assets.load_catalog(), "yolox_nano")
    with FileServer(isolated / "site") as server:
        monkeypatch.setenv(assets.DOWNLOAD_ENV, server.base_url)
        with pytest.raises(assets.AssetError, match="wrong sha256"):
            assets.ensure(asset)
    assert not list((isolated / "cache" / "models").iterdir())


def test_a_mirror_copy_with_the_wrong_sha256_is_not_used(isolated: Path) -> None:
    (isolated / "mirror" / "models").mkdir()
    (isolated / "mirror" / "models" / "yolox_nano.onnx").write_bytes(b"tampered")
    asset = assets.model_asset(assets.load_catalog(), "yolox_nano")
    with pytest.raises(assets.AssetError) as caught:
        assets.ensure(asset, download=False)
    assert "has the wrong sha256" in str(caught.value)


def test_photos_from_a_partial_mirror_and_the_server(
    isolated: Path, shared: Path, monkeypatch
) -> None:
    (isolated / "mirror" / "testdata" / "images").mkdir(parents=True)
    shutil.copy(shared / "testdata/images/dog.jpg", isolated / "mirror/testdata/images/dog.jpg")
    with FileServer(shared) as server:
        monkeypatch.setenv(assets.DOWNLOAD_ENV, server.base_url)
        folder = assets.ensure_photos()
        assert "/testdata/images/dog.jpg" not in server.behaviour.paths  # the mirror had it
    assert folder == isolated / "cache" / "testdata" / "images"
    from guanjia.scene_photos import resolve_images_dir

    assert resolve_images_dir(folder) == folder  # every photo the clips need


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guanjia", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
        timeout=120,
    )


def test_cli_fetch_offline_is_one_line_then_downloads(isolated: Path, shared: Path) -> None:
    env = {
        assets.DATA_ENV: str(isolated / "mirror"),
        assets.CACHE_ENV: str(isolated / "cache"),
        assets.DOWNLOAD_ENV: "http://127.0.0.1:9",  # nothing listens: no network
    }
    done = run_cli("model", "fetch", "yolox_nano", env=env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: models/yolox_nano.onnx: cannot download")
    assert f"under {isolated / 'cache'}" in lines[0]
    with FileServer(shared) as server:
        env[assets.DOWNLOAD_ENV] = server.base_url
        done = run_cli("model", "fetch", "yolox_nano", env=env)
        assert done.returncode == 0, done.stderr
        assert "downloaded, sha256 verified" in done.stdout
        done = run_cli("model", "fetch", "yolox_nano", env=env)
        assert "already present (cache)" in done.stdout
    done = run_cli("model", "fetch", "nosuch", env=env)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: nosuch: not in the catalogue")
