"""`guanjia demo` for real: Mosquitto, the gateway and an edge node as processes, real clips,
the real model. Plus the demo's pure pieces (config scaling, metrics parsing, broker config)
and its pretend camera, which need none of that.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from guanjia.demo import sla_deadline
from guanjia.demo_camera import BOUNDARY, CameraServer, Clip
from guanjia.demo_client import parse_counter
from guanjia.demo_setup import broker_config, scale_camera_config
from tests.support.processes import alive, child_pids, processes_mentioning

# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def demo_env(model_dir: Path, testdata_images: Path, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUANJIA_GATEWAY_")}
    env |= {
        "GUANJIA_MODEL_DIR": str(model_dir),
        "GUANJIA_TESTDATA_DIR": str(testdata_images),
        "TMPDIR": str(tmp_path),  # the demo's temporary work dir lands here
        "COLUMNS": "160",  # the ticket table unabridged
    }
    return env


def demo(*args: str) -> list[str]:
    return [sys.executable, "-m", "guanjia", "demo", "--port", "0", *args]


def wait_gone(pids: dict[str, int], timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [name for name, pid in pids.items() if alive(pid)]
        if not left:
            return []
        time.sleep(0.1)
    return [name for name, pid in pids.items() if alive(pid)]


def read_until(proc: subprocess.Popen[str], pattern: str, timeout: float) -> str:
    """Stdout lines until one matches `pattern` (the demo flushes each line to the pipe)."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if re.search(pattern, line):
            return "".join(lines)
    raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(lines)}")


StartDemo = Callable[[str, float], tuple[subprocess.Popen[str], str]]
"""Start `guanjia demo` in the background; (process, its output up to a line matching the
pattern, read within the timeout)."""


@pytest.fixture
def start_demo(demo_env: dict[str, str]) -> Iterator[StartDemo]:
    """Starts demos; each is killed (with its process group) at teardown if still running."""
    procs: list[subprocess.Popen[str]] = []

    def start(pattern: str, timeout: float) -> tuple[subprocess.Popen[str], str]:
        proc = subprocess.Popen(
            demo(), env=demo_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        procs.append(proc)
        return proc, read_until(proc, pattern, timeout=timeout)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# -- end to end ------------------------------------------------------------------------------


@pytest.mark.mqtt
def test_demo_opens_the_expected_tickets_and_leaves_no_process(
    mosquitto_available: None, demo_env: dict[str, str], tmp_path: Path
) -> None:
    from gateway.auth import verify_password
    from gateway.store import Store

    workdir = tmp_path / "demo"
    out = subprocess.run(
        demo("--workdir", str(workdir), "--duration", "90"),
        env=demo_env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = out.stdout + out.stderr
    assert out.returncode == 0, output
    assert "ending: the clips have finished" in output, output

    # Every child is gone once the demo has returned.
    pids = child_pids(output)
    assert set(pids) == {"mosquitto", "gateway", "edge node"}, output
    assert [name for name, pid in pids.items() if alive(pid)] == []
    assert processes_mentioning(str(workdir)) == []

    # The gateway's database (kept: --workdir) has exactly the story of the clips.
    store = Store(f"sqlite:///{workdir / 'gateway.db'}")
    try:
        tickets = store.tickets.list_tickets(sites=None, limit=100).items
        by_category: dict[str, list[Any]] = {}
        for ticket in tickets:
            by_category.setdefault(ticket.category.value, []).append(ticket)
        assert {k: len(v) for k, v in by_category.items()} == {
            "illegal_parking": 1,
            "ebike_in_elevator": 1,
            "fire_lane_blocked": 1,
            "charging_hazard": 1,  # guanjia/demo_sensors.py: the shed's port cut off
            "fire_alarm": 1,  # and its smoke detector
        }, tickets
        (hazard,) = by_category["charging_hazard"]
        assert (hazard.device_id, hazard.zone_id) == ("shed-1", "port1_over_temperature")
        (parking,) = by_category["illegal_parking"]
        (ebike,) = by_category["ebike_in_elevator"]
        assert parking.zone_id == "no-parking-a"
        assert ebike.zone_id == "cabin"
        assert ebike.severity == "urgent"
        # The car drove off before the clip ended: the edge's `end` auto-resolved the ticket.
        assert parking.state.value == "resolved"
        assert parking.condition_cleared_at is not None
        assert {t.assignee for t in tickets} == {"wang.butler"}  # the roster's duty butler
        # The printed operator credentials are the real ones.
        password = re.search(r"operator demo-operator / (\S+)", output)
        assert password is not None, output
        found = store.users.user_credentials("demo-operator")
        assert found is not None
        assert verify_password(found[1], password[1])
    finally:
        store.close()

    # The output told the story and ended with the table.
    for category in ("illegal_parking", "ebike_in_elevator", "fire_lane_blocked"):
        assert re.search(rf"ticket #\d+ opened: {category}", output), output
        assert re.search(rf"^ *\d+ {category} ", output, re.M), output
    # The edge node logged in with its own account, not anonymously.
    broker_log = (workdir / "logs" / "mosquitto.log").read_text()
    assert "as edge-demo-01 (" in broker_log
    assert "u'edge-demo-01'" in broker_log
    # The gateway's start (ending its ingest workers' old sessions) met no refused login.
    assert "not authorised" not in broker_log.lower(), broker_log
    # The gateway's log says what it did (not one line per API poll of the demo).
    gateway_log = (workdir / "logs" / "gateway.log").read_text()
    assert "ingest subscribed as demo-gateway" in gateway_log
    assert "GET /api/tickets" not in gateway_log


@pytest.mark.mqtt
def test_demo_sigterm_stops_every_child_and_removes_its_temp_dir(
    mosquitto_available: None, start_demo: StartDemo
) -> None:
    proc, head = start_demo(r"started edge node", 90)
    workdir = re.search(r"work dir (\S+)", head)
    assert workdir is not None, head
    assert Path(workdir[1]).is_dir()
    pids = child_pids(head)
    assert set(pids) == {"mosquitto", "gateway", "edge node"}, head
    assert all(alive(pid) for pid in pids.values())

    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, head + rest
    assert [name for name, pid in pids.items() if alive(pid)] == []
    assert processes_mentioning(workdir[1]) == []
    assert not Path(workdir[1]).exists(), rest
    assert f"removed {workdir[1]}" in rest


@pytest.mark.mqtt
def test_demo_killed_with_sigkill_takes_its_children_along(
    mosquitto_available: None, start_demo: StartDemo
) -> None:
    proc, head = start_demo(r"started gateway", 60)
    pids = child_pids(head)
    assert set(pids) == {"mosquitto", "gateway"}, head
    assert all(alive(pid) for pid in pids.values())

    proc.kill()  # no handler, no cleanup: only the kernel's parent-death signal is left
    proc.wait()
    assert wait_gone(pids, timeout=20) == []


@pytest.mark.mqtt
def test_demo_whose_broker_dies_says_so_and_stops_the_rest(
    mosquitto_available: None, start_demo: StartDemo
) -> None:
    proc, head = start_demo(r"started gateway", 60)
    pids = child_pids(head)
    workdir = re.search(r"work dir (\S+)", head)
    assert workdir is not None, head
    os.kill(pids["mosquitto"], signal.SIGKILL)

    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, head + rest
    assert "error: mosquitto exited with status -9" in rest
    assert "logs/mosquitto.log" in rest  # where to look
    assert wait_gone(pids, timeout=5) == []
    assert not Path(workdir[1]).exists()


def test_demo_without_the_model_says_so_and_starts_nothing(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    missing = tmp_path / "no-models-here"
    workdir = tmp_path / "demo"
    out = subprocess.run(
        demo("--model-dir", str(missing), "--workdir", str(workdir)),
        env=demo_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"model directory {missing}" in out.stderr
    assert "--model-dir" in out.stderr
    assert "Traceback" not in out.stderr
    assert not workdir.exists()


def test_demo_without_mosquitto_says_how_to_install_it(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    out = subprocess.run(
        demo("--mosquitto", str(tmp_path / "mosquitto")),
        env=demo_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert "apt-get install mosquitto" in out.stderr
    assert "Traceback" not in out.stderr


# -- the pure pieces -------------------------------------------------------------------------


def test_scale_camera_config_shortens_every_duration_but_not_the_network_ones() -> None:
    config = {
        "camera_id": "cam",
        "source": "http://127.0.0.1:1/cam.mjpg",
        "fps": 5,
        "zones": [
            {
                "id": "z",
                "rule": "illegal_parking",
                "polygon": [[0, 0], [1, 0], [1, 1]],
                "dwell_s": 4.0,
            },
            {
                "id": "lift",
                "rule": "ebike_in_elevator",
                "polygon": [[0, 0], [1, 0], [1, 1]],
                "min_consecutive": 10,
            },
        ],
    }
    same = scale_camera_config(config, 1.0)
    fast = scale_camera_config(config, 2.0)
    assert fast["fps"] == 10
    assert fast["zones"][0]["dwell_s"] == 2.0
    assert fast["zones"][0]["update_interval_s"] == same["zones"][0]["update_interval_s"] / 2
    assert fast["tracker"]["stationary_s"] == same["tracker"]["stationary_s"] / 2
    assert fast["motion"]["keepalive_s"] == same["motion"]["keepalive_s"] / 2
    # Counts stay counts (the deprecated min_consecutive is a count of sightings); stream
    # reconnect timings are about the network, not the scene.
    assert fast["zones"][1]["min_sightings"] == 10
    assert fast["reconnect"] == same["reconnect"]


def test_parse_counter_sums_the_matching_samples() -> None:
    text = (
        "# HELP guanjia_ingest_messages_total Messages\n"
        'guanjia_ingest_messages_total{channel="event",outcome="accepted"} 7.0\n'
        'guanjia_ingest_messages_total{channel="event",outcome="duplicate"} 2.0\n'
        'guanjia_ingest_messages_total{channel="heartbeat",outcome="accepted"} 40.0\n'
        'guanjia_ingest_messages_created{channel="event",outcome="accepted"} 1.7e9\n'
    )
    assert parse_counter(text, "guanjia_ingest_messages_total", channel="event") == 9
    assert (
        parse_counter(text, "guanjia_ingest_messages_total", channel="event", outcome="accepted")
        == 7
    )
    assert parse_counter(text, "guanjia_ingest_messages_total") == 49
    assert parse_counter(text, "guanjia_dead_letters_total") == 0


def test_broker_config_never_allows_anonymous_clients(tmp_path: Path) -> None:
    text = broker_config(
        port=1234,
        passwd_file=tmp_path / "passwd",
        acl_file=tmp_path / "acl",
        as_root=False,
    )
    lines = text.splitlines()
    assert "allow_anonymous false" in lines
    assert "listener 1234 127.0.0.1" in lines
    assert f"password_file {tmp_path / 'passwd'}" in lines
    assert f"acl_file {tmp_path / 'acl'}" in lines
    assert "user root" not in lines


@pytest.mark.parametrize(
    ("state", "expected"),
    [("new", "ack by"), ("dispatched", "resolve by"), ("resolved", "resolved")],
)
def test_sla_deadline_names_the_deadline_that_matters(state: str, expected: str) -> None:
    ticket = {"state": state, "ack_due_at": 0.0, "resolve_due_at": 0.0, "resolved_at": 0.0}
    assert sla_deadline(ticket).startswith(expected + " ")


def test_camera_server_plays_the_clip_then_holds_the_last_frame() -> None:
    frames = [b"\xff\xd8first\xff\xd9", b"\xff\xd8second\xff\xd9"]
    clip = Clip("cam-x", frames, fps=20.0)
    server = CameraServer([clip])
    server.start()
    try:
        with urllib.request.urlopen(server.url("cam-x"), timeout=5) as stream:
            assert stream.headers["Content-Type"].endswith(f"boundary={BOUNDARY}")
            body = b""
            while body.count(BOUNDARY.encode()) < 6:
                body += stream.read1(4096)
        parts = [p for p in body.split(f"--{BOUNDARY}".encode()) if p]
        payloads = [p.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n") for p in parts[:5]]
        assert payloads[0] == frames[0]
        assert set(payloads[1:]) == {frames[1]}  # after the end, the last frame stays on show
        assert clip.started_at is not None
        assert server.all_finished(time.monotonic())
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(server.url("cam-unknown"), timeout=5)
    finally:
        server.close()


# -- broker choice, ticket lines, the table ---------------------------------------------------


def test_auto_broker_is_mosquitto_when_found_else_embedded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from guanjia import demo_preflight
    from guanjia.demo_preflight import DemoError, choose_broker

    binary = tmp_path / "mosquitto"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert choose_broker("auto", binary).kind == "mosquitto"
    monkeypatch.setattr(demo_preflight, "find_mosquitto", lambda explicit: None)
    plan = choose_broker("auto", None)
    assert plan.kind == "embedded"
    assert plan.why == "no mosquitto binary found"
    with pytest.raises(DemoError, match="apt-get install mosquitto"):
        choose_broker("mosquitto", None)
    assert choose_broker("embedded", binary).kind == "embedded"


def test_every_state_change_is_a_line_even_between_two_polls() -> None:
    from guanjia.demo_view import change_lines

    ticket = {"id": 4, "category": "fire_lane_blocked", "condition_cleared_at": None}
    audit: list[dict[str, Any]] = [
        {"actor": "system:ingest", "from_state": None, "to_state": "new"},
        {"actor": "demo-operator", "from_state": "new", "to_state": "acknowledged"},
        {"actor": "demo-operator", "from_state": "acknowledged", "to_state": "dispatched"},
        {"actor": "wang.butler", "from_state": None, "to_state": None},  # a photo
        {"actor": "wang.butler", "from_state": "dispatched", "to_state": "in_progress"},
    ]
    assert change_lines(ticket, audit) == [
        "ticket #4 fire_lane_blocked: new → acknowledged by demo-operator",
        "ticket #4 fire_lane_blocked: acknowledged → dispatched by demo-operator",
        "ticket #4 fire_lane_blocked: dispatched → in_progress by wang.butler",
    ]


def test_final_table_is_whole_in_80_columns() -> None:
    from rich.console import Console

    from guanjia.demo_view import tickets_table

    tickets = [
        {
            "id": 12,
            "category": category,
            "zone_id": "no-parking-a",
            "state": "in_progress",
            "ack_due_at": 0.0,
            "resolve_due_at": 0.0,
            "resolved_at": None,
            "assignee": "wang.butler",
        }
        for category in ("ebike_in_elevator", "fire_lane_blocked", "illegal_parking")
    ]
    console = Console(width=80, record=True)
    console.print(tickets_table(tickets))
    text = console.export_text()
    assert "…" not in text
    for category in ("ebike_in_elevator", "fire_lane_blocked", "illegal_parking"):
        assert re.search(rf"^ *12 {category} +no-parking-a in_progress resolve by ", text, re.M)
    assert all(len(line) <= 80 for line in text.splitlines())


def test_live_block_shows_every_device_sensors_included() -> None:
    from rich.console import Console

    from guanjia.demo_client import GatewayClient
    from guanjia.demo_view import Watcher

    watcher = Watcher(GatewayClient("http://127.0.0.1:9"), Console(width=100))
    now = time.time()
    watcher.watch.devices = [
        {
            "device_id": "edge-demo-01",
            "kind": "camera",
            "online": True,
            "last_seen": now,
            "health": {"outbox_depth": 0, "cameras": [{"camera_id": "cam-lane", "fps": 4.9}]},
        },
        {
            "device_id": "smoke-7",
            "kind": "smoke",
            "online": False,
            "last_seen": None,
            "health": None,
        },
    ]
    watcher.watch.tickets = {1: {"state": "new"}, 2: {"state": "resolved"}}
    console = Console(width=100, record=True)
    console.print(watcher.status(None, time.monotonic()))
    text = console.export_text()
    assert re.search(r"device edge-demo-01 +camera, online, heard 0 s ago, outbox 0", text)
    assert re.search(r"device smoke-7 +smoke, offline", text)
    assert re.search(r"tickets +new 1, resolved 1", text)
    assert "devices online 1/2" in watcher.status_line(None, time.monotonic())


def test_demo_offline_without_a_mirror_says_which_files_to_put_where(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUANJIA_")}
    (tmp_path / "empty").mkdir()
    env |= {
        "GUANJIA_DATA_DIR": str(tmp_path / "empty"),
        "GUANJIA_CACHE_DIR": str(tmp_path / "cache"),
        "GUANJIA_DOWNLOAD_URL": "http://127.0.0.1:9",  # nothing listens: no network
        "TMPDIR": str(tmp_path),
    }
    out = subprocess.run(demo(), env=env, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: models/yolox_nano.onnx: cannot download")
    assert f"under {tmp_path / 'cache'}" in lines[0]
    assert "GUANJIA_DATA_DIR" in lines[0]
    assert not list(tmp_path.glob("guanjia-demo-*"))  # nothing started
