"""The telemetry path: readings leave ingest here and are stored on a thread of their own.

`TelemetrySink.offer` is what ingest calls: it appends to a bounded queue and returns at
once (never a lock held across I/O, never a database call), so a flood of readings cannot
delay an event's ticket. The sink's thread takes up to `batch_size` points at a time (or
what is there every `flush_interval_s`) and hands the batch to every `PointWriter`. Past
`max_queue` points, new points are refused and counted in `dropped`: the embedded store
keeping up is what bounds it, and the count is on /metrics.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence

from gateway.telemetry.points import Point, PointWriter

log = logging.getLogger(__name__)


class TelemetrySink:
    """A bounded queue and one writer thread in front of the point writers."""

    def __init__(
        self,
        writers: Sequence[PointWriter],
        *,
        max_queue: int = 500_000,
        batch_size: int = 5000,
        flush_interval_s: float = 0.2,
    ) -> None:
        self.writers = list(writers)
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.accepted = 0
        self.dropped = 0
        self.stored = 0
        self.write_errors = 0
        self._queue: deque[Point] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="telemetry-sink", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        """Points waiting for the writers."""
        return len(self._queue)

    def offer(self, points: Sequence[Point]) -> int:
        """Queue points without blocking; how many were taken (the rest are dropped)."""
        with self._cond:
            room = max(self.max_queue - len(self._queue), 0)
            taken = points if len(points) <= room else points[:room]
            self._queue.extend(taken)
            self.accepted += len(taken)
            self.dropped += len(points) - len(taken)
            if len(self._queue) >= self.batch_size:
                self._cond.notify()
        return len(taken)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._closing or len(self._queue) >= self.batch_size,
                    timeout=self.flush_interval_s,
                )
                n = min(len(self._queue), self.batch_size)
                batch = [self._queue.popleft() for _ in range(n)]
                done = self._closing and not self._queue
            if batch:
                for writer in self.writers:
                    try:
                        writer.write(batch)
                    except Exception:  # a writer's bug must not stop the others or the sink
                        self.write_errors += 1
                        log.exception("telemetry: %s failed", type(writer).__name__)
                with self._cond:
                    self.stored += len(batch)
                    self._cond.notify_all()
            if done:
                return

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until the queue is empty and its last batch written (tests, shutdown)."""
        with self._cond:
            target = self.accepted
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self.stored >= target, timeout=timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, then close the writers."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout_s)
        for writer in self.writers:
            writer.close()
