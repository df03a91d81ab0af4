"""A sliding-window counter per key (a client address), in this process's memory. Pure:
`now` is passed in.

Per-address limits are per replica (an address spread over N replicas gets N times the
limit); the per-place limit that also protects the queue is counted in the database, so it
holds across replicas (`ResidentStore.recent_reports`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque


class SlidingWindow:
    """At most `limit` events per key in any `window_s`; at most `max_keys` keys tracked
    (the longest-idle is forgotten first, so memory stays bounded under an address flood)."""

    def __init__(self, limit: int, window_s: float, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        # Routes call it from the event loop and from worker threads (asyncio.to_thread).
        self._lock = threading.Lock()

    def allow(self, key: str, now: float) -> bool:
        """Count one event for `key` at `now`; False (not counted) when over the limit."""
        with self._lock:
            return self._allow(key, now)

    def _allow(self, key: str, now: float) -> bool:
        times = self._seen.get(key)
        if times is None:
            times = deque()
            self._seen[key] = times
            while len(self._seen) > self.max_keys:
                self._seen.popitem(last=False)
        self._seen.move_to_end(key)
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True
