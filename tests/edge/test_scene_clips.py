"""Writing a scenario clip (guanjia.scene_clips) as JPEG frames and as a video file."""

from __future__ import annotations

from pathlib import Path

from edge.camera_config import parse_camera_config
from edge.capture import open_source
from guanjia import scene_clips, scene_photos, scenes


def test_write_clip_as_frames_and_as_video(tmp_path: Path, testdata_images: Path) -> None:
    scenario = scene_clips.Scenario(
        "short",
        1.0,
        [scene_clips.Path2D("car", [(0.0, 0.0, 300.0), (1.0, 100.0, 300.0)])],
        camera="lane",
        images_dir=testdata_images,
    )
    folder = scene_clips.write_clip(scenario, tmp_path / "frames")
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:05d}.jpg" for i in range(5)]
    video = scene_clips.write_clip(scenario, tmp_path / "out" / "clip.avi")
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
        assert frames[0].image.shape == (scene_photos.H, scene_photos.W, 3)
        # Close to the generated frame (JPEG loss only), so the car is really there.
        diff = abs(frames[2].image.astype(int) - scenario.frame(2).astype(int)).mean()
        assert diff < 6.0
