"""The change feed of one process (`gateway.stream.ChangeFeed`): with no stream open it moves
to the feed's end without reading entries, and a stream that subscribes meanwhile, even
while that end is being read, still gets every entry after the id it started from."""

from __future__ import annotations

import asyncio
import threading
import time

import contract as c
from gateway.ingest import IngestHandler
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store
from gateway.store.repository import FeedStore
from gateway.stream import ChangeFeed, ChangeHub
from tests.gateway.apphelpers import SITE
from tests.gateway.factories import event, seed_site, topic_of


def _open_tickets(store: Store, tag: str, n: int) -> None:
    handler = IngestHandler(store, dict(DEFAULT_POLICIES))
    now = time.time()
    for i in range(n):
        message = event(SITE, "cam-a", f"ev-{tag}-{i:04d}", zone_id=f"z-{tag}-{i}", ts=now)
        handler.handle(topic_of(message), c.encode(message), now)


class _HeldEnd:
    """A store's feed part whose `last_change_id` waits (in its worker thread) until
    released, so a test can subscribe while the feed is reading the end."""

    def __init__(self, feed: FeedStore) -> None:
        self.feed = feed
        self.reading = threading.Event()
        self.release = threading.Event()

    def last_change_id(self) -> int:
        self.reading.set()
        self.release.wait(10)
        return self.feed.last_change_id()

    def changes_after(self, last_id: int, limit: int = 500) -> list[object]:
        return list(self.feed.changes_after(last_id, limit))


async def test_no_stream_moves_to_the_end_and_a_later_stream_gets_what_follows(
    db_url: str,
) -> None:
    store = Store(db_url)
    seed_site(store, SITE, ("cam-a",))
    hub = ChangeHub()
    feed = ChangeFeed(store, hub, poll_s=60)
    await feed.start()
    _open_tickets(store, "unread", 3)
    assert await feed.poll() == 0  # nobody listens: nothing read
    assert feed.last_id == store.feed.last_change_id() > 0

    queue = hub.subscribe()
    _open_tickets(store, "live", 2)
    assert await feed.poll() == 2
    got = [queue.get_nowait() for _ in range(queue.qsize())]
    assert [e.id for e in got] == [e.id for e in store.feed.changes_after(got[0].id - 1)]
    assert len(got) == 2
    assert {e.site_id for e in got} == {SITE}
    store.close()


async def test_a_stream_subscribing_while_the_end_is_read_misses_nothing(db_url: str) -> None:
    store = Store(db_url)
    seed_site(store, SITE, ("cam-a",))
    hub = ChangeHub()
    held = _HeldEnd(store.feed)
    feed = ChangeFeed(store, hub, poll_s=60)
    await feed.start()
    start = feed.last_id
    _open_tickets(store, "racing", 3)
    store.feed = held  # type: ignore[assignment]  # only the two reads poll makes
    polling = asyncio.create_task(feed.poll())
    await asyncio.to_thread(held.reading.wait, 10)
    queue = hub.subscribe()  # the stream starts from `start`, the id the feed is at
    assert feed.last_id == start
    held.release.set()
    assert await polling == 3
    assert [queue.get_nowait().id for _ in range(queue.qsize())] == [
        e.id for e in store.feed.changes_after(start)
    ]
    store.close()
