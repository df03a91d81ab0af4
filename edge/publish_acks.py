"""Which publish a broker's PUBACK answers: the link's map of message ids, free of paho.

`edge.mqtt_link` records what each QoS 1 message id stands for (an outbox token, a caller
waiting for the broker's verdict, or nothing) and looks it up when the ack arrives. paho may
call back with the ack before `publish` has returned the id, so an ack for an id not recorded
yet is kept until `track` records it. Both maps reset on every connect, with paho's queue.

The lock here is small and never held around a paho call: paho holds its own out-message lock
while calling back with an ack, and the link holds its lock while waiting for paho's.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Generic, TypeVar

from edge.link_options import Outcome

Code = TypeVar("Code")


@dataclass(frozen=True)
class Waiting:
    """A `publish_now` whose caller wants the broker's verdict."""

    topic: str
    outcome: Outcome


Token = int | Waiting | None
"""What a message id stands for: an outbox token, a waiting caller, or nothing to tell."""


class PendingAcks(Generic[Code]):
    """Message id → `Token`, and acks (with their reason `Code`) that beat their id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[int, Token] = {}
        self._early: dict[int, Code] = {}

    def track(self, mid: int, token: Token) -> Code | None:
        """Remember what `mid` stands for; its reason code if the ack already arrived."""
        with self._lock:
            if mid in self._early:
                return self._early.pop(mid)
            self._tokens[mid] = token
            return None

    def acked(self, mid: int, code: Code) -> tuple[bool, Token]:
        """(True, token) for a recorded `mid`; else keep `code` for `track` and (False, None)."""
        with self._lock:
            if mid not in self._tokens:
                self._early[mid] = code
                return False, None
            return True, self._tokens.pop(mid)

    def reset(self) -> list[Waiting]:
        """Forget every id (a new connection numbers afresh); the callers still waiting."""
        with self._lock:
            lost = [t for t in self._tokens.values() if isinstance(t, Waiting)]
            self._tokens.clear()
            self._early.clear()
        return lost

    def drop_waiting(self) -> list[Waiting]:
        """Forget the waiting callers only (the connection dropped); return them."""
        with self._lock:
            lost = [t for t in self._tokens.values() if isinstance(t, Waiting)]
            for mid in [m for m, t in self._tokens.items() if isinstance(t, Waiting)]:
                del self._tokens[mid]
        return lost
