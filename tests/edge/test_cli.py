"""`guanjia edge detect` and `guanjia edge replay`, through the real command."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from contract import DetectionEvent, EventPhase, decode
from guanjia import scenes as S  # noqa: N812 - short name for many scenario calls
from guanjia.cli import app

runner = CliRunner()


def test_detect_prints_json_lines(model_dir: Path, testdata_images: Path) -> None:
    result = runner.invoke(
        app,
        [
            "edge",
            "detect",
            str(testdata_images / "000000165518.jpg"),
            "--model-dir",
            str(model_dir),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["class"], r["category"]) for r in rows] == [
        ("person", "person"),
        ("motorcycle", "two_wheeler"),
    ]
    assert abs(rows[1]["score"] - 0.622) <= 0.01
    assert (
        max(abs(a - b) for a, b in zip(rows[1]["box"], [252.9, 260.3, 427.1, 512.0], strict=True))
        <= 2
    )


def test_detect_missing_model_is_a_clear_error(tmp_path: Path, testdata_images: Path) -> None:
    result = runner.invoke(
        app, ["edge", "detect", str(testdata_images / "dog.jpg"), "--model-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "yolox_nano.onnx not found" in result.output


def test_replay_is_deterministic_with_start(tmp_path: Path, model_dir: Path) -> None:
    clip = S.car_parks(park_s=6.0, tail_s=1.0).write_folder(tmp_path / "clip")
    config = tmp_path / "lane.yaml"
    config.write_text(yaml.safe_dump(S.lane_config()), encoding="utf-8")
    args = ["edge", "replay", str(clip), "--config", str(config), "--model-dir", str(model_dir)]
    args += ["--json", "--start", "1795300000", "--fps", "5"]
    first = runner.invoke(app, args)
    second = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    lines = [line for line in first.stdout.splitlines() if line.startswith("{")]
    decoded = [decode(DetectionEvent, line.encode()) for line in lines]
    events = [e for e in decoded if isinstance(e, DetectionEvent)]
    assert len(events) == len(lines) >= 2
    assert events[0].phase is EventPhase.START
    assert events[-1].phase is EventPhase.END
    assert {e.event_id for e in events} == {events[0].event_id}
    assert all(1795300000 <= e.ts <= 1795300000 + 10 for e in events)
    assert first.stdout == second.stdout


def test_replay_needs_no_source_when_the_clip_is_given(tmp_path: Path, model_dir: Path) -> None:
    clip = S.car_parks(park_s=6.0, tail_s=1.0).write_folder(tmp_path / "clip")
    camera = S.lane_config()
    del camera["source"]
    config = tmp_path / "lane.yaml"
    config.write_text(yaml.safe_dump(camera), encoding="utf-8")
    args = ["edge", "replay", str(clip), "--config", str(config), "--model-dir", str(model_dir)]
    result = runner.invoke(app, [*args, "--json", "--fps", "5"])
    assert result.exit_code == 0, result.output
    assert '"phase":"start"' in result.stdout


def test_replay_rejects_bad_config(tmp_path: Path, model_dir: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "camera_id: c\nsource: x\nzones: [{id: z, rule: litter, polygon: [[0,0],[1,1]]}]\n"
    )
    result = runner.invoke(
        app,
        ["edge", "replay", str(tmp_path), "--config", str(config), "--model-dir", str(model_dir)],
    )
    assert result.exit_code == 2
    assert "bad.yaml: zones[0].polygon" in result.output


def test_detect_a_folder_names_each_image(
    tmp_path: Path, model_dir: Path, testdata_images: Path
) -> None:
    for name in ("000000165518.jpg", "dog.jpg"):
        (tmp_path / name).write_bytes((testdata_images / name).read_bytes())
    (tmp_path / "notes.txt").write_text("not an image")
    result = runner.invoke(
        app, ["edge", "detect", str(tmp_path), "--model-dir", str(model_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["image"] for r in rows} == {"000000165518.jpg", "dog.jpg"}
    assert ("000000165518.jpg", "motorcycle") in {(r["image"], r["class"]) for r in rows}
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["edge", "detect", str(empty), "--model-dir", str(model_dir)])
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {empty}: a folder with no images (.bmp, .jpeg, .jpg, .png)"
    )
