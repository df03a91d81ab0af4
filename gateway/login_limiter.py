"""The login limiter: slows password guessing without letting a guesser lock anyone out.

Three counters of failed logins, each over a window that starts at a key's first failure:

- per (user, address): `pair_attempts` failures, then that pair is refused (429) until the
  window ends. Someone guessing from one address is stopped; the real user, elsewhere, is not.
- per address: `address_attempts` failures across all user names, then the address is refused:
  one address spraying many names (or filling the counters) is stopped.
- per user: past `user_attempts` failures from any addresses, every further attempt for that
  user is *delayed* by `user_delay_s`, never refused, so guessing from many addresses is
  slowed and the real user can still log in.

The address is the client as `gateway.api.proxies` resolves it (X-Forwarded-For only from a
configured proxy). Each counter keeps at most `max_tracked` keys; when it is full the least
recently failed key is forgotten (and a key whose window is over is dropped when next seen),
so memory stays bounded whatever names are tried. Forgetting a key can only make the limiter
more lenient to it, never lock anyone out; the per-address counter stops one address from
flushing the others by spraying names.

An attempt is counted when it starts (`attempt`), before the password is verified, and
given back if it succeeds: N concurrent guesses are N counted failures while argon2 runs.

Kept in process memory on purpose: it slows guessing against one replica; the argon2 cost
slows it everywhere. Pure: `now` is passed in, so tests need no clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


class _Counter:
    """Failures per key within a window from the key's first failure; at most `max_keys`
    keys, least recently failed forgotten first."""

    def __init__(self, window_s: float, max_keys: int) -> None:
        self.window_s = window_s
        self.max_keys = max_keys
        # key -> [failures, window start]; a list, not a deque of times: ~100 B a key.
        self._keys: OrderedDict[Hashable, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def _live(self, key: Hashable, now: float) -> list[float] | None:
        entry = self._keys.get(key)
        if entry is not None and now >= entry[1] + self.window_s:
            del self._keys[key]
            return None
        return entry

    def count(self, key: Hashable, now: float) -> tuple[int, float]:
        """(failures in the key's window, seconds until that window ends)."""
        entry = self._live(key, now)
        if entry is None:
            return 0, 0.0
        return int(entry[0]), entry[1] + self.window_s - now

    def add(self, key: Hashable, now: float) -> None:
        entry = self._live(key, now)
        if entry is None:
            self._keys[key] = [1, now]
        else:
            entry[0] += 1
            self._keys.move_to_end(key)
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)

    def forget(self, key: Hashable) -> None:
        self._keys.pop(key, None)

    def discard(self, key: Hashable, now: float) -> None:
        """Take back one failure counted in the key's current window."""
        entry = self._live(key, now)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] <= 0:
            del self._keys[key]


@dataclass(frozen=True)
class LoginDecision:
    """Refuse for `retry_after` seconds (None: go ahead), after waiting `delay_s`."""

    retry_after: float | None
    delay_s: float = 0.0


class LoginLimiter:
    """See the module docstring."""

    def __init__(
        self,
        *,
        pair_attempts: int,
        address_attempts: int,
        user_attempts: int,
        user_delay_s: float,
        window_s: float,
        max_tracked: int,
    ) -> None:
        self.pair_attempts = pair_attempts
        self.address_attempts = address_attempts
        self.user_attempts = user_attempts
        self.user_delay_s = user_delay_s
        self.max_tracked = max_tracked
        self._pairs = _Counter(window_s, max_tracked)
        self._addresses = _Counter(window_s, max_tracked)
        self._users = _Counter(window_s, max_tracked)

    def __len__(self) -> int:
        """Keys remembered across the three counters (at most 3 × `max_tracked`)."""
        return len(self._pairs) + len(self._addresses) + len(self._users)

    def check(self, username: str, address: str, now: float) -> LoginDecision:
        """Whether a login for `username` from `address` may be tried now."""
        failures, left = self._pairs.count((username, address), now)
        if failures >= self.pair_attempts:
            return LoginDecision(retry_after=left)
        failures, left = self._addresses.count(address, now)
        if failures >= self.address_attempts:
            return LoginDecision(retry_after=left)
        failures, _ = self._users.count(username, now)
        delay = self.user_delay_s if failures >= self.user_attempts else 0.0
        return LoginDecision(retry_after=None, delay_s=delay)

    def attempt(self, username: str, address: str, now: float) -> LoginDecision:
        """`check`, and when the login may go ahead, count it as failed at once (an
        in-flight slot) — before the password is verified, so concurrent guesses cannot
        all pass the check before any failure is counted. A wrong password needs nothing
        more; a right one calls `succeeded`, which gives the slot back."""
        decision = self.check(username, address, now)
        if decision.retry_after is None:
            self.failed(username, address, now)
        return decision

    def failed(self, username: str, address: str, now: float) -> None:
        """Count one failed attempt."""
        self._pairs.add((username, address), now)
        self._addresses.add(address, now)
        self._users.add(username, now)

    def succeeded(self, username: str, address: str, now: float) -> None:
        """An `attempt` succeeded: the pair's failures are forgotten and the attempt's own
        slot is given back to the address and the user; their earlier failures still count,
        so a guesser who knows one password cannot reset the limits for the others."""
        self._pairs.forget((username, address))
        self._addresses.discard(address, now)
        self._users.discard(username, now)
