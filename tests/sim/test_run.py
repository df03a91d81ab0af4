"""`guanjia sim` end to end: the real CLI provisions a site, Mosquitto runs on the shipped
config with those accounts, a real `guanjia gateway run` ingests, and the simulator's
summary agrees with what the gateway stored."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import create_engine, text

from gateway.store import database_url
from tests.gateway.proc import wait_for
from tests.sim.conftest import SimSite, guanjia

pytestmark = pytest.mark.mqtt


def scalar(db_url: str, sql: str) -> int:
    engine = create_engine(database_url(db_url))
    with engine.connect() as conn:
        value = int(conn.execute(text(sql)).scalar_one())
    engine.dispose()
    return value


RUN = ("--cameras", "4", "--sensors", "2", "--esphome", "2", "--zones", "3")


def test_sim_run_is_acknowledged_end_to_end_and_reflected(
    sim_site_factory: Callable[..., SimSite], sqlite_url: str
) -> None:
    site = sim_site_factory(sqlite_url, *RUN)
    gateway = site.start_gateway("gateway-1")
    gateway.wait_ready()
    code, report, output = site.run_sim(
        *RUN,
        "--duration",
        "4",
        "--rate",
        "4",
        "--update-every",
        "1.5",
        "--telemetry-interval",
        "2",
        "--heartbeat-interval",
        "2",
        "--snapshot-ratio",
        "0.5",
        "--ack-timeout",
        "3",
        "--drain",
        "20",
        "--api",
        gateway.url,
        "--no-live",
    )
    assert code == 0, output
    kinds = report["kinds"]
    planned = report["planned"]
    assert kinds["event"]["sent"] == planned["event"] > 0
    assert kinds["event"]["gateway_acked"] == planned["event"]
    assert kinds["snapshot"]["gateway_acked"] == planned["snapshot"] > 0
    assert kinds["telemetry"]["gateway_acked"] == planned["telemetry"] > 0
    assert kinds["esphome"]["broker_acked"] == kinds["esphome"]["sent"] > 0
    assert all(k["pending"] == 0 for k in kinds.values())
    assert report["gateway_latency"]["count"] >= planned["event"]
    assert report["gateway_latency"]["p95_ms"] is not None
    # What the gateway committed: every event once, one ticket per (camera, zone) key.
    assert scalar(sqlite_url, "SELECT count(*) FROM evidence") == planned["event"]
    assert scalar(sqlite_url, "SELECT count(*) FROM tickets") == planned["keys"]
    assert report["reflected"]["tickets"] == planned["keys"]
    assert report["reflected"]["sensors_with_points"] == report["reflected"]["sensors"] == 4
    assert "events/s acknowledged by the gateway" in output


def test_sim_without_a_gateway_reports_what_was_not_acknowledged(
    sim_site_factory: Callable[..., SimSite], sqlite_url: str
) -> None:
    """The broker PUBACKs everything, but no gateway commits: the summary must say so."""
    site = sim_site_factory(sqlite_url, *RUN)
    code, report, output = site.run_sim(
        *RUN,
        "--duration",
        "1.5",
        "--rate",
        "6",
        "--ack-timeout",
        "0.5",
        "--drain",
        "0.5",
        "--no-live",
    )
    assert code == 1, output
    events = report["kinds"]["event"]
    assert events["broker_acked"] >= events["sent"] > 0
    assert events["gateway_acked"] == 0
    assert events["pending"] == report["planned"]["event"]
    assert events["resent"] > 0  # re-sent while no Ack came
    assert report["unacked_keys"]
    assert "not acknowledged" in output


@pytest.mark.slow
def test_sim_resends_until_a_late_gateway_acks(
    sim_site_factory: Callable[..., SimSite], sqlite_url: str
) -> None:
    """The gateway starts only after the sends: the broker holds nothing for it (no session
    yet), so only the simulator's re-sends get the events in — and each is stored once."""
    site = sim_site_factory(sqlite_url, *RUN)

    def late() -> None:
        site.start_gateway("gateway-1")

    timer = threading.Timer(4.0, late)
    timer.start()
    try:
        code, report, output = site.run_sim(
            *RUN,
            "--duration",
            "2",
            "--rate",
            "4",
            "--ack-timeout",
            "1",
            "--max-ack-timeout",
            "2",
            "--drain",
            "120",
            "--no-live",
        )
    finally:
        timer.join()
    assert code == 0, output
    events = report["kinds"]["event"]
    assert events["gateway_acked"] == report["planned"]["event"] > 0
    assert events["resent"] > 0
    wait_for(
        lambda: scalar(sqlite_url, "SELECT count(*) FROM evidence") == report["planned"]["event"],
        10,
        "evidence",
    )


def test_sim_errors_are_one_line(tmp_path: object) -> None:
    done = guanjia("sim", "run", "--credentials", "/nonexistent/creds.json")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: --credentials: /nonexistent/creds.json: No such file or directory"
    ]
    done = guanjia(
        "sim",
        "provision",
        "--credentials",
        "/tmp/x.json",
        "--passwd-file",
        "/nope/passwd",
        "--acl-file",
        "/tmp/acl",
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: --passwd-file: /nope/passwd: its folder")
    assert len(done.stderr.strip().splitlines()) == 1
