"""Camera configs: the shipped examples load, and every kind of mistake names file and field."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from edge.camera_config import (
    CameraConfigError,
    ElevatorZone,
    IllegalParkingZone,
    TimeWindow,
    load_camera_config,
    parse_camera_config,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "firmware_configs" / "cameras"


def test_examples_cover_the_four_sites() -> None:
    names = sorted(p.stem for p in EXAMPLES.glob("*.yaml"))
    assert names == ["elevator-cabin", "facade-block5", "garbage-point", "village-lane"]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_example_config_loads(path: Path) -> None:
    config = load_camera_config(path)
    assert config.zones, "every example watches at least one zone"
    for zone in config.zones:
        assert len(zone.polygon) >= 3


def test_village_lane_has_overnight_window() -> None:
    config = load_camera_config(EXAMPLES / "village-lane.yaml")
    parking = next(z for z in config.zones if isinstance(z, IllegalParkingZone))
    assert parking.dwell_s == 300
    assert parking.allowed_windows[0].contains(time(23, 30))
    assert not parking.allowed_windows[0].contains(time(12, 0))


def test_elevator_defaults_are_two_seconds_whatever_the_fps() -> None:
    zone = ElevatorZone.model_validate(
        {"id": "cabin", "rule": "ebike_in_elevator", "polygon": [[0, 0], [1, 0], [1, 1]]}
    )
    assert (zone.dwell_s, zone.min_sightings) == (2.0, 3)
    assert zone.actions == ["voice_warning", "door_hold"]


def test_every_zone_has_an_end_setting() -> None:
    config = load_camera_config(EXAMPLES / "village-lane.yaml")
    assert all(z.end_after_s == 3.0 for z in config.zones)
    z = {"id": "z", "rule": "litter", "polygon": [[0, 0], [1, 0], [1, 1]], "end_after_s": 0}
    with pytest.raises(CameraConfigError, match="greater than 0") as err:
        parse_camera_config({"camera_id": "c", "source": 0, "zones": [z]})
    assert err.value.field == "zones[0].end_after_s"


LANE_PX = [[0, 360], [320, 360], [320, 480], [0, 480]]


def test_pixel_polygon_is_converted_once_at_load() -> None:
    zone = {"id": "kerb", "rule": "illegal_parking", "polygon_px": LANE_PX}
    config = parse_camera_config(
        {"camera_id": "c", "source": 0, "resolution": [640, 480], "zones": [zone]}
    )
    assert config.zones[0].polygon == [(0.0, 0.75), (0.5, 0.75), (0.5, 1.0), (0.0, 1.0)]


@pytest.mark.parametrize(
    ("extra", "zone_extra", "field", "problem"),
    [
        pytest.param({}, {}, "zones[0].polygon_px", "needs the camera's resolution", id="no-res"),
        pytest.param(
            {"resolution": [320, 240]}, {}, "zones[0].polygon_px", "outside", id="off-frame"
        ),
        pytest.param(
            {"resolution": [640, 480]},
            {"polygon": [[0, 0], [1, 0], [1, 1]]},
            "zones[0]",
            "either polygon or polygon_px",
            id="both",
        ),
    ],
)
def test_pixel_polygon_mistakes_name_the_field(
    extra: dict[str, object], zone_extra: dict[str, object], field: str, problem: str
) -> None:
    zone = {"id": "kerb", "rule": "illegal_parking", "polygon_px": LANE_PX, **zone_extra}
    with pytest.raises(CameraConfigError, match=problem) as err:
        parse_camera_config({"camera_id": "c", "source": 0, "zones": [zone], **extra})
    assert err.value.field == field


def test_one_zone_names_several_rules() -> None:
    zone = {
        "id": "lane-a",
        "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]],
        "inertia": 2,
        "rules": {
            "fire_lane_blocked": {"dwell_s": 60},
            "illegal_parking": {
                "dwell_s": 300,
                "allowed_windows": [{"start": "22:00", "end": "07:00"}],
            },
        },
    }
    config = parse_camera_config({"camera_id": "c", "source": 0, "zones": [zone]})
    assert [(z.id, z.rule, getattr(z, "dwell_s", None), z.inertia) for z in config.zones] == [
        ("lane-a", "fire_lane_blocked", 60, 2),
        ("lane-a", "illegal_parking", 300, 2),
    ]
    assert config.zones[0].polygon == config.zones[1].polygon
    bad = {**zone, "rules": {"illegal_parking": {"inertia": 5}}}
    with pytest.raises(CameraConfigError) as err:
        parse_camera_config({"camera_id": "c", "source": 0, "zones": [bad]})
    assert err.value.field == "zones[0].rules.illegal_parking.inertia"


def test_source_may_be_given_by_the_caller(tmp_path: Path) -> None:
    path = _write(tmp_path, "camera_id: c1\nzones: []\n")
    with pytest.raises(CameraConfigError, match="Field required") as err:
        load_camera_config(path)
    assert err.value.field == "source"
    assert load_camera_config(path, source="clip.avi").source == "clip.avi"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cam.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_unknown_key_names_file_and_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "camera_id: c1\nsource: usb:0\nzones:\n"
        "  - {id: z, rule: litter, polygon: [[0,0],[1,0],[1,1]], dwel_s: 5}\n",
    )
    with pytest.raises(CameraConfigError) as err:
        load_camera_config(path)
    assert err.value.path == str(path)
    assert err.value.field == "zones[0].dwel_s"
    assert "unknown key" in str(err.value)


def test_top_level_typo_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "camera_id: c1\nsource: usb:0\nfsp: 5\n")
    with pytest.raises(CameraConfigError, match=r"cam\.yaml: fsp: unknown key"):
        load_camera_config(path)


@pytest.mark.parametrize(
    ("polygon", "problem"),
    [
        ("[[0,0],[1,1]]", "at least 3 points"),
        ("[[0,0],[0.5,0.5],[1,1]]", "no area"),
        ("[[0,0],[1,1],[1,0],[0,1]]", "cross"),
        ("[[0,0],[1.5,0],[1,1]]", "less than or equal to 1"),
    ],
    ids=["two-points", "collinear", "bow-tie", "outside-frame"],
)
def test_invalid_polygon_is_rejected(tmp_path: Path, polygon: str, problem: str) -> None:
    path = _write(
        tmp_path,
        f"camera_id: c1\nsource: usb:0\nzones:\n"
        f"  - {{id: z, rule: fire_lane_blocked, polygon: {polygon}}}\n",
    )
    with pytest.raises(CameraConfigError, match=problem) as err:
        load_camera_config(path)
    assert err.value.field.startswith("zones[0].polygon")


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CameraConfigError, match="not valid YAML"):
        load_camera_config(_write(tmp_path, "camera_id: [unclosed\n"))
    with pytest.raises(CameraConfigError, match="cannot read"):
        load_camera_config(tmp_path / "missing.yaml")
    with pytest.raises(CameraConfigError, match="mapping"):
        load_camera_config(_write(tmp_path, "- just a list\n"))


def test_duplicate_zone_ids_and_bad_timezone() -> None:
    zone = {"id": "z", "rule": "litter", "polygon": [[0, 0], [1, 0], [1, 1]]}
    with pytest.raises(CameraConfigError, match="unique"):
        parse_camera_config({"camera_id": "c", "source": 0, "zones": [zone, zone]})
    with pytest.raises(CameraConfigError, match="time zone"):
        parse_camera_config({"camera_id": "c", "source": 0, "timezone": "Mars/Olympus"})


def test_litter_never_counts_people_or_cars() -> None:
    zone = {
        "id": "z",
        "rule": "litter",
        "polygon": [[0, 0], [1, 0], [1, 1]],
        "categories": ["person"],
    }
    with pytest.raises(CameraConfigError, match="never count as litter"):
        parse_camera_config({"camera_id": "c", "source": 0, "zones": [zone]})


@pytest.mark.parametrize(
    ("start", "end", "at", "inside"),
    [
        ("22:00", "07:00", time(23, 0), True),
        ("22:00", "07:00", time(0, 0), True),
        ("22:00", "07:00", time(6, 59), True),
        ("22:00", "07:00", time(7, 0), False),
        ("22:00", "07:00", time(21, 59), False),
        ("22:00", "07:00", time(12, 0), False),
        ("09:00", "17:00", time(9, 0), True),
        ("09:00", "17:00", time(17, 0), False),
        ("09:00", "17:00", time(8, 59), False),
        ("00:00", "00:00", time(13, 0), True),  # start == end: all day
    ],
)
def test_time_window(start: str, end: str, at: time, inside: bool) -> None:
    assert TimeWindow(start=start, end=end).contains(at) is inside


def test_time_window_rejects_bad_time() -> None:
    with pytest.raises(ValueError, match="HH:MM"):
        TimeWindow(start="25:00", end="07:00")


def test_usb_source_needs_an_index() -> None:
    # Used to pass validation and then crash `open_source` with int("front").
    with pytest.raises(CameraConfigError, match="usb:N") as err:
        parse_camera_config({"camera_id": "c", "source": "usb:front"})
    assert err.value.field == "source"
    assert parse_camera_config({"camera_id": "c", "source": "usb:2"}).source == "usb:2"


def test_a_relative_source_is_relative_to_the_camera_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "cams"
    folder.mkdir()
    text = "camera_id: c\nsource: ./frames\nfps: 5\nzones: []\n"
    path = folder / "c.yaml"
    path.write_text(text)
    monkeypatch.chdir(tmp_path)
    assert load_camera_config(path).source == str(folder / "frames")
    # A source given on the command line stays relative to the working directory.
    assert load_camera_config(path, source="clip.mp4").source == "clip.mp4"
    path.write_text(text.replace("./frames", "rtsp://cam:554/s"))
    assert load_camera_config(path).source == "rtsp://cam:554/s"


def test_broken_yaml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("camera_id: [\n")
    with pytest.raises(CameraConfigError) as caught:
        load_camera_config(path)
    assert "\n" not in str(caught.value)
    assert "not valid YAML at line 2" in str(caught.value)
