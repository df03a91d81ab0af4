"""Slow soak: a night of heartbeats from 10,000 devices through the ingest handler, in
batches as the MQTT edge sends them, on a simulated clock. Memory and row counts stay
bounded, and offline tickets open only for the devices that really went silent.

Run with ``--run-slow``; ``GUANJIA_SOAK_DEVICES`` scales it down for a quick look.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from gateway.ingest import IngestHandler, Outcome
from gateway.sla import DEFAULT_POLICIES, TicketCategory
from gateway.store import Store, database_url
from tests.gateway.factories import T0, heartbeat, pair, seed_site, status

SITE = "night-site"
DEVICES = int(os.environ.get("GUANJIA_SOAK_DEVICES", "10000"))
INTERVAL_S = 600.0
ROUNDS = int(8 * 3600 / INTERVAL_S)  # 22:00 to 06:00
SILENT_FROM_ROUND = ROUNDS // 3
SILENT = 25
BATCH = 100  # the MQTT edge's default batch_max
GRACE = 3.0
OFFLINE = DEFAULT_POLICIES[TicketCategory.DEVICE_OFFLINE]


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _rows(db_url: str) -> dict[str, int]:
    engine = create_engine(database_url(db_url))
    try:
        with engine.connect() as conn:
            return {
                table: int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
                for table in ("processed_messages", "dead_letters", "changes", "tickets")
            }
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~3.5 min on SQLite, longer on PostgreSQL, on a shared 2-core box
def test_a_night_of_heartbeats_from_10k_devices(db_url: str) -> None:
    devices = [f"dev-{i:05d}" for i in range(DEVICES)]
    rng = random.Random(8)
    silent = set(rng.sample(devices, SILENT))
    store = Store(db_url)
    seed_site(store, SITE, tuple(devices))
    handler = IngestHandler(store, dict(DEFAULT_POLICIES), cooldown_s=600)
    offline_seen: set[str] = set()
    rss: list[float] = []
    try:
        first = [pair(status(SITE, d, "online", T0)) for d in devices]
        for start in range(0, len(first), BATCH):
            handler.handle_batch(first[start : start + BATCH], T0)
        for rnd in range(ROUNDS):
            base = T0 + rnd * INTERVAL_S
            talking = [d for d in devices if rnd < SILENT_FROM_ROUND or d not in silent]
            rng.shuffle(talking)
            batches = range(0, len(talking), BATCH)
            step = INTERVAL_S / len(batches)
            for n, start in enumerate(batches):
                now = base + n * step
                chunk = talking[start : start + BATCH]
                beats = [pair(heartbeat(SITE, d, ts=now, interval_s=INTERVAL_S)) for d in chunk]
                results = handler.handle_batch(beats, now)
                assert {r.outcome for r in results} == {Outcome.ACCEPTED}
            changes = store.devices.mark_stale_devices(
                base + INTERVAL_S, GRACE, INTERVAL_S, OFFLINE
            )
            offline_seen |= {ch.device_id or "" for ch in changes if ch.action == "offline"}
            rss.append(_rss_mib())
        rows = _rows(db_url)
        tickets = store.tickets.list_tickets(categories=["device_offline"], limit=1000).items
    finally:
        store.close()
    assert offline_seen == silent
    assert {t.device_id for t in tickets} == silent
    # Heartbeats leave no per-message rows (only each offline alert claims its id); the feed
    # holds one online change per device plus each silent device's offline change and ticket.
    assert rows["processed_messages"] == SILENT
    assert rows["dead_letters"] == 0
    assert rows["tickets"] == SILENT
    assert rows["changes"] <= DEVICES + 3 * SILENT
    assert len(handler._sites) <= DEVICES  # the registry cache holds devices, not messages
    # After warm-up, the process does not keep growing with the messages it handled.
    warm = rss[len(rss) // 4]
    assert rss[-1] - warm < 64, rss
    print(f"rss MiB: start {rss[0]:.0f}, warm {warm:.0f}, end {rss[-1]:.0f}; rows {rows}")
