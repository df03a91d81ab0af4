"""`guanjia gateway mqtt-account` / `guanjia device add` as a person runs them (real
subprocesses): an existing broker account never changes role (a device account turned
gateway would read every site and could forge acks), and bad input is one line
`error: <option>: <what is allowed>`, never a usage box or a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.models import GridPublic
from gateway.store import Store, migrate
from tests.gateway.test_provisioning import guanjia, run_guanjia

SITE = "site-cli"


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    return ["--database-url", db, "--passwd-file", str(passwd), "--acl-file", str(acl)]


def _one_line_error(stderr: str, *parts: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    for part in parts:
        assert part in lines[0], stderr


def _acl(files: list[str]) -> str:
    return Path(files[files.index("--acl-file") + 1]).read_text()


def _device(name: str, files: list[str], *extra: str) -> list[str]:
    return ["device", "add", name, "--site", SITE, "--kind", "camera", *files, *extra]


def test_a_device_account_cannot_become_a_gateway_account(files: list[str]) -> None:
    guanjia(*_device("cam-x", files))
    before = _acl(files)
    refused = run_guanjia("gateway", "mqtt-account", "cam-x", *files)
    assert refused.returncode != 0
    _one_line_error(refused.stderr, "cam-x", "device")
    assert _acl(files) == before  # still a device account: writes only its own topics
    # Rotating the device's own password the way it was made still works.
    guanjia(*_device("cam-x", files))


def test_a_gateway_account_cannot_become_a_device(files: list[str]) -> None:
    guanjia("gateway", "mqtt-account", "gw-x", *files)
    before = _acl(files)
    refused = run_guanjia(*_device("gw-x", files))
    assert refused.returncode != 0
    _one_line_error(refused.stderr, "gw-x", "gateway")
    assert _acl(files) == before
    store = Store(files[1])
    try:
        assert store.devices.list_devices() == []  # nothing registered either
    finally:
        store.close()
    guanjia("gateway", "mqtt-account", "gw-x", *files)  # rotation keeps working


def test_a_refused_grant_is_one_line_naming_the_option(files: list[str]) -> None:
    refused = run_guanjia(*_device("lift-node", files, "--grant-write", "guanjia/#"))
    assert refused.returncode != 0
    _one_line_error(refused.stderr, "error: --grant-write: ", "guanjia/")


def test_a_grid_missing_or_of_another_site_is_one_line(files: list[str]) -> None:
    db = files[1]
    migrate(db)
    store = Store(db)
    try:
        store.grids.upsert_grid(
            GridPublic(grid_id="grid-other", site_id="site-other", name="Other")
        )
    finally:
        store.close()
    for grid in ("grid-missing", "grid-other"):
        refused = run_guanjia(*_device("cam-g", files, "--grid", grid))
        assert refused.returncode != 0
        _one_line_error(refused.stderr, "error: --grid: ", grid)
        assert "Traceback" not in refused.stderr


def test_an_esphome_node_can_rotate_its_password(files: list[str]) -> None:
    esphome = ["--kind", "esphome", "--profile", "smoke_detector"]
    add = ["device", "add", "smoke-1", "--site", SITE, *esphome, *files]
    guanjia(*add)
    again = run_guanjia(*add)
    assert again.returncode == 0, again.stderr
    assert "registered" in again.stdout


def test_an_unknown_profile_is_one_line(files: list[str]) -> None:
    refused = run_guanjia(*_device("s-2", files, "--profile", "nope"))
    assert refused.returncode == 2
    _one_line_error(refused.stderr, "--profile", "smoke_detector")


def test_a_broker_file_in_a_missing_folder_is_one_line_and_registers_nothing(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    missing = tmp_path / "nowhere"
    refused = run_guanjia(
        *["device", "add", "cam-m", "--site", SITE, "--kind", "camera", "--database-url", db],
        *["--passwd-file", str(missing / "passwd"), "--acl-file", str(tmp_path / "acl")],
    )
    assert refused.returncode == 2
    _one_line_error(refused.stderr, "--passwd-file", "does not exist")
    assert not (tmp_path / "gw.db").exists()
