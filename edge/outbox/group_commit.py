"""Group commit: callers that arrive while a commit is running share the next one.

Each `submit` blocks until the transaction holding its request has committed (or failed), so
the caller's guarantee is unchanged; what changes is that N camera threads putting at once pay
for one fsync instead of N. No timer is involved: a lone caller commits at once, and a batch
forms only from callers that queued up behind a running commit (``window_s`` can add a short
wait for stragglers, at the price of that much latency for everyone).

    thread A ─submit─▶ leads: takes [A]        ─write─▶ commit ─▶ A returns
    thread B ─submit──────▶ queued ┐                               B leads: takes [B, C] ─▶ ...
    thread C ─submit──────────▶ queued ┘                          (one commit for both)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Request = TypeVar("Request")
Outcome = TypeVar("Outcome")


@dataclass
class _Waiter(Generic[Request, Outcome]):
    request: Request
    done: bool = False
    outcome: Outcome | None = None
    error: Exception | None = None


class GroupCommit(Generic[Request, Outcome]):
    """Batches concurrent `submit` calls into calls of `write` (one at a time, in order).

    `write` gets the queued requests in arrival order and returns one outcome per request, or
    raises: then every request of that batch raises the same error (none was committed).
    """

    def __init__(
        self,
        write: Callable[[Sequence[Request]], Sequence[Outcome]],
        *,
        window_s: float = 0.0,
    ) -> None:
        if window_s < 0:
            raise ValueError("group commit window must be >= 0")
        self._write = write
        self._window_s = window_s
        self._cond = threading.Condition()
        self._queue: list[_Waiter[Request, Outcome]] = []
        self._leading = False

    def pending(self) -> int:
        """Requests queued for the next batch (not yet taken by a writer)."""
        with self._cond:
            return len(self._queue)

    def submit(self, request: Request) -> Outcome:
        """Queue `request`; return its outcome once the batch holding it was written."""
        waiter: _Waiter[Request, Outcome] = _Waiter(request)
        with self._cond:
            self._queue.append(waiter)
            while self._leading and not waiter.done:
                self._cond.wait()
            if not waiter.done:
                self._leading = True  # nobody is writing: this thread writes the next batch
        if not waiter.done:
            self._lead()
        if waiter.error is not None:
            raise waiter.error
        return waiter.outcome  # type: ignore[return-value]  # set with done, error unset

    def _lead(self) -> None:
        if self._window_s:
            time.sleep(self._window_s)
        with self._cond:
            batch, self._queue = self._queue, []
        outcomes: Sequence[Outcome] = ()
        error: Exception | None = None
        try:
            outcomes = self._write([w.request for w in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError("group commit: write returned the wrong number of outcomes")
        except Exception as exc:  # handed to every caller of the batch, none is lost
            error = exc
        with self._cond:
            for index, waiter in enumerate(batch):
                if error is None:
                    waiter.outcome = outcomes[index]
                else:
                    waiter.error = error
                # Only now, after `write` returned (committed), may the callers return.
                waiter.done = True
            self._leading = False
            self._cond.notify_all()
