"""A sliding-window counter per key (a client address; IPv6 by its /64, `address_key`), in
this process's memory. Pure: `now` is passed in.

Per-address limits are per replica (an address spread over N replicas gets N times the
limit); the per-place limit that also protects the queue is counted in the database, so it
holds across replicas (`ResidentStore.create_report`).
"""

from __future__ import annotations

import ipaddress
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

    def wait_s(self, key: str, now: float) -> float:
        """Seconds until `key` may have another event (0 when it may now)."""
        with self._lock:
            times = self._seen.get(key)
            if times is None:
                return 0.0
            live = [t for t in times if t > now - self.window_s]
            if len(live) < self.limit:
                return 0.0
            return live[len(live) - self.limit] + self.window_s - now

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


IPV6_PREFIX = 64
"""An IPv6 client is counted by its /64: a carrier hands each phone (and each home) a whole
/64, so counting single addresses would give one sender 2**64 of them."""


def address_key(client: str) -> str:
    """What the per-address limits count `client` as: an IPv4 address (IPv4-mapped IPv6
    included) as itself, an IPv6 address by its /64, anything else as it is."""
    try:
        ip = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)
