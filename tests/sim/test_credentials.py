"""`guanjia sim provision`'s accounts: registered like real devices, each pinned to its own
topics by the broker ACL, passwords only in a private credentials file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gateway.store import Store
from guanjia.sim.credentials import Credentials, provision
from guanjia.sim.plan import SimSpec

SPEC = SimSpec(site_id="s1", cameras=2, sensors=2, esphome=1)


def test_provision_registers_devices_accounts_and_profiles(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    creds = provision(
        SPEC, db, tmp_path / "passwd", tmp_path / "acl", gateways=("gateway-1",), api_user="op"
    )
    assert {d: c.role for d, c in creds.devices.items()} == {
        "sim-cam-001": "camera",
        "sim-cam-002": "camera",
        "sim-sensor-001": "sensor",
        "sim-sensor-002": "sensor",
        "sim-esp-001": "esphome",
    }
    store = Store(db)
    try:
        accounts = {a.username: a for a in store.devices.mqtt_accounts()}
        assert accounts["sim-cam-001"].role == "device"
        assert accounts["sim-esp-001"].role == "esphome"
        assert accounts["gateway-1"].role == "gateway"
        # Its ingest workers' accounts come with it (no refused login when workers start).
        assert {a.username for a in accounts.values() if a.role == "gateway"} == {
            "gateway-1",
            *(f"gateway-1-w{i}" for i in range(1, 9)),
        }
        assert {
            d.device_id: d.site_id for d in store.devices.list_devices(limit=100)
        } == dict.fromkeys(creds.devices, "s1")
        nodes = {d: store.sensors.sensor_node(d) for d in ("sim-sensor-001", "sim-sensor-002")}
        assert {d: n.profile for d, n in nodes.items() if n is not None} == {
            "sim-sensor-001": "smoke_detector",
            "sim-sensor-002": "charging_monitor",
        }
    finally:
        store.close()
    acl = (tmp_path / "acl").read_text()
    assert "topic write guanjia/v1/s1/sim-cam-001/event" in acl
    assert "topic write esphome/s1/sim-esp-001/#" in acl
    passwd = (tmp_path / "passwd").read_text()
    for cred in creds.devices.values():
        assert cred.password.get_secret_value() not in passwd  # hashes only


def test_credentials_file_is_private_and_round_trips(tmp_path: Path) -> None:
    creds = provision(SPEC, f"sqlite:///{tmp_path / 'gw.db'}", tmp_path / "p", tmp_path / "a")
    path = tmp_path / "creds.json"
    path.write_text("{}")
    path.chmod(0o644)  # an earlier file, readable by all: saving over it makes it private
    creds.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = Credentials.load(path)
    assert {d: c.password.get_secret_value() for d, c in loaded.devices.items()} == {
        d: c.password.get_secret_value() for d, c in creds.devices.items()
    }
    secret = loaded.devices["sim-cam-001"].password.get_secret_value()
    assert secret not in repr(loaded)  # never printed by accident


def test_credentials_errors_name_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "creds.json"
    path.write_text('{"site_id": "s", "devices": {"d": {"role": "boss", "password": "x"}}}')
    with pytest.raises(ValueError, match=r"creds.json: devices.d.role: "):
        Credentials.load(path)
