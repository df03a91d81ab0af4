"""Group commit: callers that arrive while a commit is running share the next one.

Each `submit` blocks until the transaction holding its request has committed (or failed), so
the caller's guarantee is unchanged; what changes is that N camera threads putting at once pay
for one fsync instead of N. A lone caller commits at once; a batch forms from the callers
that queued up behind a running commit.

Callers that were in one batch come back at slightly different times: the first one back
would lead a batch of one and the rest the next, halving the batch size (measured: 8 camera
threads averaged 4 puts per commit, alternating 1 and 7). So after a batch of k, the next
leader waits until k requests are queued, for at most ``max_wait_s`` and never longer than
the last write took — a lone caller (k = 1) never waits.

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
        max_wait_s: float = 0.002,
    ) -> None:
        if max_wait_s < 0:
            raise ValueError("group commit max_wait_s must be >= 0")
        self._write = write
        self._max_wait_s = max_wait_s
        self._cond = threading.Condition()
        self._queue: list[_Waiter[Request, Outcome]] = []
        self._leading = False
        self._last_batch = 1
        self._last_write_s = 0.0

    def pending(self) -> int:
        """Requests queued for the next batch (not yet taken by a writer)."""
        with self._cond:
            return len(self._queue)

    def submit(self, request: Request) -> Outcome:
        """Queue `request`; return its outcome once the batch holding it was written."""
        waiter: _Waiter[Request, Outcome] = _Waiter(request)
        with self._cond:
            self._queue.append(waiter)
            self._cond.notify_all()  # a leader may be waiting for this one
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
        with self._cond:
            # Wait for the rest of the last batch's callers (see the module docstring).
            deadline = time.monotonic() + min(self._max_wait_s, self._last_write_s)
            while len(self._queue) < self._last_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch, self._queue = self._queue, []
            self._last_batch = len(batch)
        outcomes: Sequence[Outcome] = ()
        error: Exception | None = RuntimeError("group commit: the write was interrupted")
        started = time.monotonic()
        try:
            outcomes = self._write([w.request for w in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError("group commit: write returned the wrong number of outcomes")
            error = None
        except Exception as exc:  # handed to every caller of the batch, none is lost
            error = exc
        finally:  # even on KeyboardInterrupt: release the callers and the leadership
            with self._cond:
                self._last_write_s = time.monotonic() - started
                for index, waiter in enumerate(batch):
                    if error is None:
                        waiter.outcome = outcomes[index]
                    else:
                        waiter.error = error
                    # Only now, after `write` returned (committed), may the callers return.
                    waiter.done = True
                self._leading = False
                self._cond.notify_all()
