"""Issue 13: ingest workers' broker accounts come with the gateway's own.

`guanjia gateway mqtt-account gw-1` provisions ``gw-1-w1`` … ``gw-1-w8`` with the same
password and role, so raising `mqtt.ingest_processes` needs no account made by hand, and a
fresh start (which ends the sessions of workers no longer configured, logging in as each)
meets no refused login at the broker. Real CLI, real Mosquitto on the files it wrote, real
`guanjia gateway run` with two workers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.provisioning import gateway_accounts
from tests.gateway.proc import start_gateway, wait_for
from tests.gateway.test_provisioning import guanjia, password_of
from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.mqtt


def test_the_gateway_account_brings_its_workers_accounts() -> None:
    assert gateway_accounts("gw-1") == ["gw-1"] + [f"gw-1-w{i}" for i in range(1, 9)]


def test_a_fresh_start_with_workers_has_no_refused_login(
    broker_factory: Callable[..., MosquittoBroker], tmp_path: Path, sqlite_url: str
) -> None:
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    files = ["--database-url", sqlite_url, "--passwd-file", str(passwd), "--acl-file", str(acl)]
    password = password_of(guanjia("gateway", "mqtt-account", "gw-acct", *files))
    assert all(f"user {name}\n" in acl.read_text() for name in gateway_accounts("gw-acct"))
    broker = broker_factory(passwd_file=passwd, acl_file=acl)
    gateway = start_gateway(
        tmp_path, sqlite_url, broker, "gw-acct", password=password, mqtt__ingest_processes=2
    )
    try:
        gateway.wait_ready()
        wait_for(
            lambda: all(f"as gw-acct-w{i}" in broker.log_path.read_text() for i in (1, 2)),
            30,
            "both workers connected",
        )
        # Workers 3-8 are not configured: the gateway logs in as each to end its session.
        stale = ", ".join(f"'gw-acct-w{i}'" for i in range(3, 9))
        wait_for(lambda: stale in gateway.log.read_text(), 30, "the stale sessions ended")
    finally:
        gateway.stop()
    log = broker.log_path.read_text()
    assert "not authorised" not in log, log[-2000:]
    assert "refused" not in gateway.log.read_text()
