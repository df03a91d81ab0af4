"""The live change feed for consoles, across replicas.

Every ticket and device change is a row in the database's ordered change feed, written in the
transaction that made it (`gateway.store.feed`). Each replica runs one `ChangeFeed` task that
reads the rows after the last one it saw and fans them out to its SSE subscribers (`ChangeHub`).
So a console on replica B sees what replica A committed, and a reconnecting console resumes
from its Last-Event-ID by reading the same table.

Polling an ordered table was chosen over PostgreSQL LISTEN/NOTIFY because it is one mechanism
for both databases (SQLite has no notifications), survives a dropped connection without
losing anything, and is what Last-Event-ID replay needs anyway. To keep latency low without
polling hard, a replica wakes its own poller the moment it commits (`wake`), so its own
changes go out at once; other replicas' changes arrive within `stream_poll_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.models import FeedEntry
from gateway.store import Store, StoreUnavailableError

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1000
"""Entries a slow SSE client may fall behind by before it loses the oldest (it can
reconnect with Last-Event-ID to fill the gap)."""
READ_LIMIT = 500
"""Feed rows per read, so a burst is fanned out in pieces rather than one huge query."""


class ChangeHub:
    """Fan-out of feed entries to subscriber queues; a slow subscriber loses oldest entries
    (it can reconnect with Last-Event-ID to fill the gap)."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[FeedEntry]] = set()

    def subscribe(self) -> asyncio.Queue[FeedEntry]:
        """A new subscriber queue."""
        queue: asyncio.Queue[FeedEntry] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[FeedEntry]) -> None:
        """Drop a subscriber."""
        self._queues.discard(queue)

    @property
    def subscribers(self) -> int:
        """Subscriber queues now (open streams of this process)."""
        return len(self._queues)

    def publish(self, entries: list[FeedEntry]) -> None:
        """Push entries to every subscriber (call on the event loop)."""
        for entry in entries:
            for queue in self._queues:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(entry)


class StreamSlots:
    """Bounds the open streams of this replica, per user and in all, so a script cannot hold
    thousands of connections (each a queue of up to `QUEUE_LIMIT` entries and a task).

    Counted per replica, in memory: a stream lives on one process, and its slot must come
    back however the stream ends (client gone, user disabled, server stopping), which a
    shared counter could not guarantee after a crash."""

    def __init__(self, per_user: int, total: int) -> None:
        self.per_user = per_user
        self.total = total
        self._open: dict[str, int] = {}
        self._count = 0

    def acquire(self, username: str) -> str | None:
        """Take a slot for `username`; None on success, else the one-line reason."""
        if self._count >= self.total:
            return f"too many open streams on this server (limit {self.total}); try later"
        held = self._open.get(username, 0)
        if held >= self.per_user:
            return f"too many open streams for this user (limit {self.per_user}); close one"
        self._open[username] = held + 1
        self._count += 1
        return None

    def release(self, username: str) -> None:
        """Give a slot back (once per successful `acquire`)."""
        held = self._open.get(username, 0)
        if held <= 0:
            return
        if held == 1:
            del self._open[username]
        else:
            self._open[username] = held - 1
        self._count -= 1

    def held(self, username: str) -> int:
        """Open streams of `username`."""
        return self._open.get(username, 0)

    @property
    def count(self) -> int:
        """Open streams in all."""
        return self._count


class ChangeFeed:
    """Reads the shared change feed in id order and publishes it to the hub."""

    def __init__(self, store: Store, hub: ChangeHub, poll_s: float) -> None:
        self.store = store
        self.hub = hub
        self.poll_s = poll_s
        self.last_id = 0
        self._wake = asyncio.Event()

    async def start(self) -> None:
        """Begin at the feed's current end (older entries are replayed per client)."""
        self.last_id = await asyncio.to_thread(self.store.feed.last_change_id)

    def wake(self) -> None:
        """This replica just committed changes: read the feed now rather than at the tick."""
        self._wake.set()

    async def poll(self) -> int:
        """Publish every entry after `last_id`; returns how many."""
        if not self.hub.subscribers:
            # Nobody to publish to (no stream open on this process): move to the feed's end
            # without reading the entries (reading them cost the gateway process ~3 µs of CPU
            # per event its ingest workers applied). A stream opened later starts from
            # `last_id` and reads what it missed from the store. Both checks and the move
            # run in one step of the loop, so a stream that subscribes while the end is
            # read is seen by the second check and gets the entries the normal way.
            newest = await asyncio.to_thread(self.store.feed.last_change_id)
            if not self.hub.subscribers:
                self.last_id = max(self.last_id, newest)
                return 0
        total = 0
        while True:
            entries = await asyncio.to_thread(
                self.store.feed.changes_after, self.last_id, READ_LIMIT
            )
            if entries:
                self.last_id = entries[-1].id
                self.hub.publish(entries)
                total += len(entries)
            if len(entries) < READ_LIMIT:
                return total

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()
            try:
                await self.poll()
            except StoreUnavailableError as exc:
                log.warning("change feed: database unavailable (%s)", exc)
                await asyncio.sleep(self.poll_s)
            except Exception:  # the stream must outlive a bad read: log and keep going
                log.exception("change feed read failed; continuing")
                await asyncio.sleep(self.poll_s)
