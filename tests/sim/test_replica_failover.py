"""Scale-out, what runs here: three `guanjia gateway run` replicas on one shared
subscription, each with its own broker account, on PostgreSQL, under `guanjia sim` load;
one replica killed -9 mid-load and restarted. No alert lost, no ticket doubled, no
escalation (or its notification) doubled; the figures are printed.

Slow (about two minutes): run with --run-slow.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from gateway.store import Store, database_url
from tests.gateway.proc import GatewayProcess, wait_for
from tests.sim.conftest import SimSite
from tests.support.postgres import isolated_schema

pytestmark = [pytest.mark.mqtt, pytest.mark.postgres, pytest.mark.slow]

REPLICAS = ("gateway-1", "gateway-2", "gateway-3")
RUN = ("--cameras", "16", "--sensors", "2", "--esphome", "0", "--zones", "4")
URGENT = ("fire_lane_blocked", "ebike_in_elevator")
# Tight SLA windows on the urgent zones so all three replicas race to escalate mid-load.
POLICIES = {c: {"ack_within_s": 2, "resolve_within_s": 4} for c in URGENT}
BREACHES_PER_TICKET = 3  # ack, resolve, resolve_2: each once


@pytest.fixture
def failover_db(postgres_url: str) -> Iterator[str]:
    yield from isolated_schema(postgres_url)


def rows(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(database_url(db_url))
    with engine.connect() as conn:
        result = [tuple(r) for r in conn.execute(text(sql))]
    engine.dispose()
    return result


def accepted(gateway: GatewayProcess) -> float:
    found = re.findall(
        r'guanjia_ingest_messages_total\{channel="event",outcome="accepted"\} (\S+)',
        gateway.metrics(),
    )
    return sum(float(v) for v in found)


def duplicates(gateway: GatewayProcess) -> float:
    found = re.findall(
        r'guanjia_ingest_messages_total\{channel="[a-z_]+",outcome="duplicate"\} (\S+)',
        gateway.metrics(),
    )
    return sum(float(v) for v in found)


def test_three_replicas_one_killed_and_restarted_under_sim_load(
    sim_site_factory: Callable[..., SimSite], failover_db: str
) -> None:
    site = sim_site_factory(failover_db, *RUN, gateways=REPLICAS)
    store = Store(failover_db)
    store.webhooks.add_webhook("http://127.0.0.1:9/hook", "wecom")  # nothing listens: rows stay
    store.close()
    settings = {"mqtt__share_group": "guanjia", "policies": POLICIES, "sla_tick_s": 0.3}
    gateways = {name: site.start_gateway(name, **settings) for name in REPLICAS}
    for gateway in gateways.values():
        gateway.wait_ready(60)

    report_path = site.workdir / "failover.json"
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "guanjia",
            "sim",
            "run",
            "--credentials",
            str(site.credentials),
            "--host",
            site.broker.host,
            "--port",
            str(site.broker.port),
            *RUN,
            "--duration",
            "40",
            "--rate",
            "5",
            "--update-every",
            "2",
            "--dwell-max",
            "6",
            "--snapshot-ratio",
            "0.3",
            "--telemetry-interval",
            "5",
            "--ack-timeout",
            "3",
            "--drain",
            "120",
            "--no-live",
            "--json",
            str(report_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ),
    )
    try:
        victim = gateways["gateway-2"]
        wait_for(lambda: accepted(victim) >= 20 or accepted(victim), 60, "gateway-2 taking load")
        before_kill = accepted(victim)
        victim.kill()  # SIGKILL: no goodbye, whatever it held uncommitted is the broker's again
        killed_at = time.monotonic()
        time.sleep(8)
        gateways["gateway-2"] = site.start_gateway("gateway-2", **settings)
        gateways["gateway-2"].wait_ready(60)
        down_s = time.monotonic() - killed_at
        output, _ = sim.communicate(timeout=400)
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.wait()
    assert sim.returncode == 0, output
    report = json.loads(report_path.read_text())
    planned = report["planned"]
    kinds = report["kinds"]

    # Every event the simulated cameras sent was acknowledged end to end ...
    assert kinds["event"]["gateway_acked"] == planned["event"] > 300
    assert kinds["telemetry"]["gateway_acked"] == planned["telemetry"]
    # ... and is in the database exactly once: none lost, none doubled.
    per_publication = rows(
        failover_db,
        # The simulated cameras' events (sensor rules' evidence has its own ids).
        "SELECT event_id, seq, count(*) FROM evidence WHERE event_id LIKE 'ev-%' "
        "GROUP BY event_id, seq",
    )
    lost = planned["event"] - len(per_publication)
    doubled = sum(n - 1 for _, _, n in per_publication)
    assert (lost, doubled) == (0, 0)
    # One ticket per (camera, zone): the plan's keys, never two for one key.
    tickets = rows(
        failover_db,
        "SELECT device_id, zone_id, category, count(*) FROM tickets WHERE category IN "
        "('illegal_parking', 'fire_lane_blocked', 'litter', 'ebike_in_elevator') "
        "GROUP BY device_id, zone_id, category",
    )
    assert len(tickets) == planned["keys"]
    assert {n for *_, n in tickets} == {1}

    # Escalations: every urgent ticket breached ack, resolve and resolve_2, each once, and
    # each escalation was announced once (one notification row per webhook).
    urgent = [
        tid
        for (tid,) in rows(
            failover_db,
            "SELECT id FROM tickets WHERE category IN ('fire_lane_blocked', 'ebike_in_elevator')",
        )
    ]
    assert urgent

    def all_escalated() -> bool | int:
        n = len(rows(failover_db, "SELECT id FROM escalations"))
        return n == BREACHES_PER_TICKET * len(urgent) or n

    wait_for(all_escalated, 60, "every urgent ticket's three breaches")
    audit = Counter(
        (tid, (json.loads(d) if isinstance(d, str) else d)["breach"])
        for tid, d in rows(
            failover_db, "SELECT ticket_id, detail FROM audit_log WHERE action = 'escalate'"
        )
    )
    assert len(audit) == BREACHES_PER_TICKET * len(urgent)
    assert set(audit.values()) == {1}
    notified: Counter[tuple[int, str]] = Counter()
    for tid, body in rows(failover_db, "SELECT ticket_id, body FROM notifications"):
        found = re.search(r"SLA breach \((\w+)\)", json.dumps(body))
        if found:
            notified[(tid, found.group(1))] += 1
    assert notified == audit

    # Every replica took part, the restarted one included.
    shares = {name: accepted(gw) for name, gw in gateways.items()}
    assert all(v > 0 for v in shares.values()), shares
    redelivered = sum(duplicates(gw) for gw in gateways.values())
    asked = planned["event"] / report["duration_s"]
    latency = report["gateway_latency"]
    print(
        f"\nfailover: 3 replicas on one shared subscription, PostgreSQL; gateway-2 killed -9 "
        f"after {before_kill:.0f} accepted events and back {down_s:.1f} s later.\n"
        f"  load: {planned['event']} events ({planned['lifecycles']} lifecycles on "
        f"{planned['keys']} keys) over {report['duration_s']:.0f} s = {asked:.1f} events/s "
        f"asked; schedule held within {report['max_lag_s']:.2f} s; all acknowledged end to "
        f"end {report['wall_s']:.0f} s after the start ({report['events_per_s']} events/s "
        f"over the whole run, drain included); gateway Ack p50 {latency['p50_ms']:.0f} ms, "
        f"p95 {latency['p95_ms']:.0f} ms, max {latency['max_ms']:.0f} ms\n"
        f"  lost {lost}, duplicates {doubled}; tickets {len(tickets)} for {planned['keys']} "
        f"keys (doubled 0); escalations {sum(audit.values())} = {len(urgent)} urgent "
        f"tickets x {BREACHES_PER_TICKET} (doubled 0, each notified once); re-sends and "
        f"redeliveries dropped by msg_id: {redelivered:.0f}; events accepted per replica "
        f"process: {shares}"
    )
