"""Where the scenario photos come from (guanjia.scene_photos): explicit, env, default."""

from __future__ import annotations

from pathlib import Path

import pytest

from guanjia import scene_photos, scenes


def test_photos_directory_explicit_then_env_then_default(
    tmp_path: Path, testdata_images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(scene_photos.ENV_VAR, raising=False)
    assert scene_photos.resolve_images_dir(None).resolve() == testdata_images.resolve()
    assert scene_photos.resolve_images_dir(testdata_images) == testdata_images
    monkeypatch.setenv(scene_photos.ENV_VAR, str(testdata_images))
    assert scene_photos.resolve_images_dir(None) == testdata_images
    # An explicit path wins over the environment, with no silent fallback.
    with pytest.raises(scene_photos.ScenesError, match=r"explicit argument.*does not exist"):
        scene_photos.resolve_images_dir(tmp_path / "nowhere")


def test_missing_photos_give_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(scene_photos.ENV_VAR, str(tmp_path / "absent"))
    with pytest.raises(scene_photos.ScenesError, match=r"\$GUANJIA_TESTDATA_DIR.*does not exist"):
        scenes.car_parks().frame(0)
    (tmp_path / "dog.jpg").write_bytes(b"")
    with pytest.raises(scene_photos.ScenesError, match=r"lacks 000000165518.jpg"):
        scene_photos.resolve_images_dir(tmp_path)
