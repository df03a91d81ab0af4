"""The ingest benchmarks' workload: DetectionEvents over 200 cameras × 3 zones, a seeded
database for them, and parking them in a broker's persistent sessions."""

from __future__ import annotations

import json
import random

import aiomqtt

import contract as c
from gateway.store import Store, migrate
from tests.support.broker import MosquittoBroker
from tests.support.messages import event
from tests.support.seed import seed_site

SITE = "bench"
CAMERAS = tuple(f"cam-{i:03d}" for i in range(200))
ZONES = ("z0", "z1", "z2")

Messages = list[tuple[str, bytes]]
"""(topic, payload) pairs in publication order."""


def workload(n: int, tag: str, seed: int = 7) -> Messages:
    """About `n` DetectionEvents (topic, payload) over 600 keys, in publication order."""
    rng = random.Random(seed)
    timed: list[tuple[float, str, bytes]] = []
    track = 0
    while len(timed) < n:
        camera, zone = rng.choice(CAMERAS), rng.choice(ZONES)
        start = rng.uniform(0, 3600)
        duration = rng.uniform(30, 600)
        updates = rng.randint(0, 3)
        event_id = f"ev-{tag}-{track:06d}"
        track += 1
        phases = [c.EventPhase.START] + [c.EventPhase.UPDATE] * updates + [c.EventPhase.END]
        for seq, phase in enumerate(phases):
            ts = start + duration * seq / (len(phases) - 1)
            message = event(
                SITE,
                camera,
                event_id,
                phase=phase,
                seq=seq,
                zone_id=zone,
                ts=1_795_300_000.0 + ts,
            )
            topic = str(c.event_topic(SITE, camera))
            timed.append((ts, topic, c.encode(message)))
    timed.sort(key=lambda item: item[0])
    return [(topic, payload) for _, topic, payload in timed]


async def register(broker: MosquittoBroker, client_id: str, filters: list[str]) -> None:
    """A persistent session subscribed to `filters` (QoS 1), left offline."""
    async with aiomqtt.Client(
        broker.host, broker.port, identifier=client_id, clean_session=False
    ) as client:
        await client.subscribe([(f, 1) for f in filters])


def msg_ids(messages: Messages) -> set[str]:
    return {json.loads(payload)["msg_id"] for _, payload in messages}


def prepare_db(db_url: str) -> None:
    migrate(db_url)
    store = Store(db_url)
    seed_site(store, SITE, CAMERAS)
    store.close()
