"""Dead letters expire, are capped per device, and a device flooding bad messages only
grows a counter beyond its per-minute quota (finding 13)."""

from __future__ import annotations

import pytest

import contract as c
from gateway.config import GatewaySettings
from gateway.ingest import IngestHandler, IngestQuotas, Outcome
from gateway.main import build_runtime
from gateway.periodic import sla_step
from gateway.sla import DEFAULT_POLICIES
from gateway.store import NotFoundError, Store
from tests.gateway.factories import T0, jpeg, seed_site

SITE = "site-r"
DAY = 24 * 3600.0


def _bad(device: str) -> tuple[str, bytes]:
    return f"guanjia/v1/{SITE}/{device}/event", b"{bad"


def test_dead_letters_expire_and_are_capped_per_device(store: Store) -> None:
    seed_site(store, SITE, ("cam-a", "cam-b"))
    handler = IngestHandler(store, dict(DEFAULT_POLICIES), cooldown_s=600)
    handler.handle_batch([_bad("cam-a")] * 10, T0)
    handler.handle_batch([_bad("cam-a")] * 30 + [_bad("cam-b")] * 3, T0 + 8 * DAY)
    handler.handle("not/a/device/topic", b"{bad", T0 + 8 * DAY)
    assert store.inbox.dead_letter_count() == 44
    removed = store.inbox.prune_dead_letters(older_than=T0 + DAY, per_device=10)
    assert removed == 10 + 20
    left = store.inbox.list_dead_letters(None, limit=1000)
    assert sorted(d.device_id or "-" for d in left) == ["-"] + ["cam-a"] * 10 + ["cam-b"] * 3
    assert min(d.received_at for d in left) == T0 + 8 * DAY


def test_dead_letters_beyond_the_per_minute_quota_are_only_counted(store: Store) -> None:
    seed_site(store, SITE, ("cam-a", "cam-b"))
    quotas = IngestQuotas(dead_letters_per_minute=5)
    handler = IngestHandler(store, dict(DEFAULT_POLICIES), cooldown_s=600, quotas=quotas)
    first = handler.handle_batch([_bad("cam-a")] * 4, T0)
    second = handler.handle_batch([_bad("cam-a")] * 4 + [_bad("cam-b")], T0 + 30)
    one = handler.handle(*_bad("cam-a"), T0 + 31)
    outcomes = [r.outcome for r in [*first, *second, one]]
    assert outcomes == [Outcome.DEAD_LETTER] * 5 + [Outcome.DROPPED] * 3 + [
        Outcome.DEAD_LETTER,
        Outcome.DROPPED,
    ]
    assert store.inbox.dead_letter_count() == 6
    assert handler.dropped == 4
    assert handler.handle(*_bad("cam-a"), T0 + 61).outcome is Outcome.DEAD_LETTER


async def test_sla_step_prunes_by_the_configured_retention(db_url: str) -> None:
    settings = GatewaySettings(
        database_url=db_url,
        demo=True,
        ingest_enabled=False,
        dead_letter_retention_s=DAY,
        snapshot_orphan_ttl_s=3600.0,
    )
    runtime = build_runtime(settings)
    store = runtime.store
    try:
        seed_site(store, SITE, ("cam-a",))
        runtime.handler.handle(*_bad("cam-a"), T0)
        topic = str(c.snapshot_topic(SITE, "cam-a", "orphan-1"))
        assert runtime.handler.handle(topic, jpeg(), T0).outcome is Outcome.ACCEPTED
        await sla_step(runtime, T0 + 3000.0)
        assert store.inbox.dead_letter_count() == 1
        assert store.tickets.snapshot(SITE, "cam-a", "orphan-1") == jpeg()
        await sla_step(runtime, T0 + DAY + 1)
        assert store.inbox.dead_letter_count() == 0
        with pytest.raises(NotFoundError):
            store.tickets.snapshot(SITE, "cam-a", "orphan-1")
    finally:
        store.close()
