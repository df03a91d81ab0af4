"""The console stream's per-change cost: each ticket change is read and rendered as a wall
card once per connected wall. CPU µs per card (store read + Jinja render) is printed beside
the limit measured in the same run: the same ticket read and serialised as the API's JSON
(what any client of /api/stream needs to show a change). Three interleaved rounds, best of
each; SQLite in a temp dir, tickets opened through the real ingest handler.

    python -m benchmarks.console_cards [--tickets 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import contract as c
from benchmarks.support.machine import loadavg
from benchmarks.support.result import emit, make
from benchmarks.support.stats import percentile
from gateway.auth import Principal, Role
from gateway.console import views
from gateway.console.i18n import Translator
from gateway.console.render import environment
from gateway.console.settings import ConsoleSettings
from gateway.console.wall import card_context
from gateway.ingest import IngestHandler
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store, migrate

CORES = 2
CHANGES_PER_S = 10.0
"""A busy estate's change rate (new alerts, updates, acknowledgements) for the walls figure."""


def _seed(store: Store, tickets: int) -> list[int]:
    store.devices.upsert_device("cam-a", "site-1", "camera")
    handler = IngestHandler(store, dict(DEFAULT_POLICIES))
    now = time.time()
    for n in range(tickets):
        box = c.BoxEvidence(ts=now, box=(0.1, 0.2, 0.3, 0.4), score=0.9)
        message = c.DetectionEvent(
            msg_id=f"m{n:08d}", ts=now, site_id="site-1", device_id="cam-a",
            event_id=f"ev-bench-{n:06d}", phase=c.EventPhase.START, seq=0,
            category=c.EventCategory.ILLEGAL_PARKING, severity=c.Severity.NORMAL,
            camera_id="cam-1", zone_id=f"z{n}", track_id=n, object_class="car",
            object_category=c.ObjectCategory.VEHICLE, score=0.9, boxes=[box], dwell_s=60.0,
            started_at=now - 60, model=c.ModelRef(name="yolox_nano", version="0.1"),
        )  # fmt: skip
        handler.handle(str(c.event_topic("site-1", "cam-a")), c.encode(message), now)
    return [t.id for t in store.tickets.list_tickets(limit=tickets).items]


def _api_json(store: Store, ids: list[int]) -> float:
    started = time.process_time()
    for ticket_id in ids:
        store.tickets.get_ticket(ticket_id).model_dump_json()
    return (time.process_time() - started) * 1e6 / len(ids)


def _cards(store: Store, ids: list[int]) -> float:
    template = environment().get_template("_card.html")
    principal = Principal("op", Role.OPERATOR, frozenset({"site-1"}))
    context = {
        "t": Translator("zh-CN"),
        "csrf": "x" * 64,
        "zone_of": lambda _site: ConsoleSettings().zone(),
        "local_time": views.local_time,
        "views": views,
        "principal": principal,
    }
    started = time.process_time()
    for ticket_id in ids:
        ticket = store.tickets.get_ticket(ticket_id)
        template.render({**context, **card_context(principal, ticket), "now": time.time()})
    return (time.process_time() - started) * 1e6 / len(ids)


def main(argv: list[str] | None = None) -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="The report size (the default).")
    parser.add_argument("--smoke", action="store_true", help="Smallest run (not a figure).")
    args = parser.parse_args(argv)
    if args.smoke:
        args.tickets, args.rounds = 20, 1
    load0 = loadavg()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        migrate(url)
        store = Store(url)
        ids = _seed(store, args.tickets)
        api: list[float] = []
        card: list[float] = []
        for _ in range(args.rounds):  # interleaved, so drift hits both alike
            api.append(_api_json(store, ids))
            card.append(_cards(store, ids))
        store.close()
    best_api, best_card = percentile(api, 50), percentile(card, 50)
    walls = CORES * 1e6 / (best_card * CHANGES_PER_S)
    print(f"tickets {len(ids)}, rounds {args.rounds}")
    print(f"limit: API JSON read     {best_api:8.0f} µs CPU per ticket change")
    print(f"console wall card        {best_card:8.0f} µs CPU per ticket change per wall")
    print(f"ratio card / API JSON    {best_card / best_api:8.2f}")
    print(f"walls a {CORES}-core gateway feeds at {CHANGES_PER_S:g} changes/s: {walls:,.0f}")
    emit(
        make(
            benchmark="console_cards",
            name="console wall card render per ticket change per wall",
            figure=best_card,
            unit="µs CPU",
            better="lower",
            limit=best_api,
            limit_name="the same ticket read as API JSON",
            rounds=args.rounds,
            size=f"{len(ids)} tickets",
            loadavg_start=load0,
            notes=f"{walls:,.0f} walls per {CORES}-core gateway at {CHANGES_PER_S:g} changes/s",
        )
    )


if __name__ == "__main__":
    main()
