"""The scenario clip generator (guanjia.scenes): photo directory resolution, writing clips."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.camera_config import parse_camera_config
from edge.capture import open_source
from guanjia import scenes


def test_photos_directory_explicit_then_env_then_default(
    tmp_path: Path, testdata_images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(scenes.ENV_VAR, raising=False)
    assert scenes.resolve_images_dir(None).resolve() == testdata_images.resolve()
    assert scenes.resolve_images_dir(testdata_images) == testdata_images
    monkeypatch.setenv(scenes.ENV_VAR, str(testdata_images))
    assert scenes.resolve_images_dir(None) == testdata_images
    # An explicit path wins over the environment, with no silent fallback.
    with pytest.raises(scenes.ScenesError, match=r"explicit argument.*does not exist"):
        scenes.resolve_images_dir(tmp_path / "nowhere")


def test_missing_photos_give_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(scenes.ENV_VAR, str(tmp_path / "absent"))
    with pytest.raises(scenes.ScenesError, match=r"\$GUANJIA_TESTDATA_DIR.*does not exist"):
        scenes.car_parks().frame(0)
    (tmp_path / "dog.jpg").write_bytes(b"")
    with pytest.raises(scenes.ScenesError, match=r"lacks 000000165518.jpg"):
        scenes.resolve_images_dir(tmp_path)


def test_import_has_no_side_effects() -> None:
    code = "import sys, guanjia.scenes; print('cv2' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("name", sorted(scenes.SCENARIOS))
def test_every_scenario_has_a_valid_camera_config(name: str) -> None:
    scenario = scenes.SCENARIOS[name]()
    config = parse_camera_config(scenes.camera_config(scenario, source="clip.avi"))
    assert config.source == "clip.avi"
    assert config.zones


def test_write_clip_as_frames_and_as_video(tmp_path: Path, testdata_images: Path) -> None:
    scenario = scenes.Scenario(
        "short",
        1.0,
        [scenes.Path2D("car", [(0.0, 0.0, 300.0), (1.0, 100.0, 300.0)])],
        camera="lane",
        images_dir=testdata_images,
    )
    folder = scenes.write_clip(scenario, tmp_path / "frames")
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:05d}.jpg" for i in range(5)]
    video = scenes.write_clip(scenario, tmp_path / "out" / "clip.avi")
    assert video == tmp_path / "out" / "clip.avi"
    for source in (folder, video):
        capture = open_source(
            parse_camera_config(scenes.camera_config(scenario, source=str(source)))
        )
        frames = []
        while (frame := capture.read()) is not None:
            frames.append(frame)
        capture.close()
        assert len(frames) == 5
        assert frames[0].image.shape == (scenes.H, scenes.W, 3)
        # Close to the generated frame (JPEG loss only), so the car is really there.
        diff = abs(frames[2].image.astype(int) - scenario.frame(2).astype(int)).mean()
        assert diff < 6.0
