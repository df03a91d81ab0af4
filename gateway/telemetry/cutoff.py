"""Relay cut-offs and their confirmation. Pure: `now` is passed in.

A dangerous port (over temperature, over current) gets a cut-off command; the relay's state
coming back off confirms it. A cut-off still unconfirmed `confirm_within_s` after it was
sent is overdue: the ticket escalates one tier at once and says so. Each cut-off is
reported overdue once. Re-enabling a port is a person's action (audited by the API); the
tracker only forgets a port's cut-off when its relay is seen off (or the person re-enables).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cutoff:
    """A cut-off sent to one port of one device."""

    site_id: str
    device_id: str
    port: int
    condition: str
    category: str
    issued_at: float
    deadline: float


@dataclass(frozen=True)
class Confirmed:
    """The relay of a cut port came back off."""

    cutoff: Cutoff
    confirmed_at: float

    @property
    def after_s(self) -> float:
        """Seconds from the command to the confirmation."""
        return self.confirmed_at - self.cutoff.issued_at


class CutoffTracker:
    """Cut-offs waiting for their relay state, per (device, port)."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, int], Cutoff] = {}
        self._overdue: set[tuple[str, int]] = set()

    def request(
        self,
        site_id: str,
        device_id: str,
        port: int,
        *,
        condition: str,
        category: str,
        now: float,
        confirm_within_s: float,
    ) -> Cutoff | None:
        """A new cut-off to send, or None when one for the port is already waiting (the
        command is not repeated: the deadline of the first one stands)."""
        key = (device_id, port)
        if key in self._pending:
            return None
        cutoff = Cutoff(site_id, device_id, port, condition, category, now, now + confirm_within_s)
        self._pending[key] = cutoff
        return cutoff

    def relay_state(self, device_id: str, port: int, on: bool, now: float) -> Confirmed | None:
        """A relay state from the device; off confirms a waiting cut-off."""
        key = (device_id, port)
        if on or key not in self._pending:
            return None
        cutoff = self._pending.pop(key)
        self._overdue.discard(key)
        return Confirmed(cutoff, now)

    def overdue(self, now: float) -> list[Cutoff]:
        """Cut-offs past their deadline, each reported once."""
        late = [
            cutoff
            for key, cutoff in self._pending.items()
            if cutoff.deadline <= now and key not in self._overdue
        ]
        self._overdue.update((c.device_id, c.port) for c in late)
        return late

    def forget(self, device_id: str, port: int) -> None:
        """A person switched the port on again: its cut-off, confirmed or not, is over."""
        self._pending.pop((device_id, port), None)
        self._overdue.discard((device_id, port))

    def pending(self) -> list[Cutoff]:
        """Every cut-off still waiting for its relay state."""
        return list(self._pending.values())
