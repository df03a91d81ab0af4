"""Devices do not set their own liveness (finding 14): status is ordered by when the gateway
received it, not by the device's clock."""

from __future__ import annotations

import pytest

from gateway.ingest import IngestHandler, Outcome
from gateway.sla import DEFAULT_POLICIES, TicketCategory
from gateway.store import Store
from tests.gateway.factories import T0, heartbeat, pair, seed_site, status

SITE = "site-l"
YEAR_3000 = 32_503_680_000.0
OFFLINE_POLICY = DEFAULT_POLICIES[TicketCategory.DEVICE_OFFLINE]


@pytest.fixture
def handler(store: Store) -> IngestHandler:
    seed_site(store, SITE, ("cam-a",))
    return IngestHandler(store, dict(DEFAULT_POLICIES), cooldown_s=600)


def test_status_from_the_future_does_not_pin_a_device_online(
    handler: IngestHandler, store: Store
) -> None:
    assert handler.handle(*pair(status(SITE, "cam-a", "online", YEAR_3000)), T0).outcome is (
        Outcome.ACCEPTED
    )
    handler.handle(*pair(status(SITE, "cam-a", "offline", T0 + 10)), T0 + 10)
    assert not store.devices.get("cam-a").online


def test_last_will_stamped_before_online_still_takes_the_device_offline(
    handler: IngestHandler, store: Store
) -> None:
    """The LWT is built at connect time, so its ts is older than the "online" sent after."""
    will = status(SITE, "cam-a", "offline", T0)
    handler.handle_batch([pair(status(SITE, "cam-a", "online", T0 + 1))], T0 + 1)
    assert store.devices.get("cam-a").online
    handler.handle_batch([pair(will)], T0 + 500)
    assert not store.devices.get("cam-a").online
    # In one batch, the later of two statuses wins too.
    handler.handle_batch([pair(status(SITE, "cam-a", "online", T0 + 900)), pair(will)], T0 + 900)
    assert not store.devices.get("cam-a").online


def test_heartbeat_clock_cannot_be_pushed_past_the_bounded_interval(
    handler: IngestHandler, store: Store
) -> None:
    """A heartbeat stamped in the future with the longest interval still times out after
    grace × 3,600 s of silence (the gateway's clock, not the device's)."""
    beat = heartbeat(SITE, "cam-a", ts=YEAR_3000, interval_s=3600.0)
    assert handler.handle(*pair(beat), T0).outcome is Outcome.ACCEPTED
    assert store.devices.mark_stale_devices(T0 + 3 * 3600 - 1, 3.0, 30.0, OFFLINE_POLICY) == []
    changes = store.devices.mark_stale_devices(T0 + 3 * 3600 + 1, 3.0, 30.0, OFFLINE_POLICY)
    assert [ch.action for ch in changes] == ["offline", "opened"]
