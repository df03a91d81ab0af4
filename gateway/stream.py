"""The live change feed for consoles: an in-process fan-out of committed changes.

Each replica pushes what it committed itself; a console connected to one replica sees that
replica's changes plus everything it re-reads through the REST API. (A cross-replica feed
would ride on PostgreSQL LISTEN/NOTIFY; not needed for a single control room.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from gateway.models import Change

QUEUE_LIMIT = 1000


class ChangeHub:
    """Fan-out of `Change`s to subscriber queues; a slow subscriber loses oldest changes."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Change]] = set()
        self.published = 0

    def subscribe(self) -> asyncio.Queue[Change]:
        """A new subscriber queue."""
        queue: asyncio.Queue[Change] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Change]) -> None:
        """Drop a subscriber."""
        self._queues.discard(queue)

    def publish(self, changes: Iterable[Change]) -> None:
        """Push committed changes to every subscriber (call on the event loop)."""
        for change in changes:
            self.published += 1
            for queue in self._queues:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(change)
