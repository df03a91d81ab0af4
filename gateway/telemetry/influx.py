"""The InfluxDB v2 write API (InfluxDB, VictoriaMetrics, …) through influxdb-client.

`InfluxWriter.write` never blocks and never fails: points go into a bounded buffer; a thread
of its own sends them in batches (`batch_size`, or whatever is there every
`flush_interval_s` plus a random jitter so replicas do not flush in step), as one
line-protocol body (influxdb-client `Point` objects cost ~5× the CPU, and a list of lines
~10×: `_Lines`). A failed batch stays at the head of the buffer and is retried with
exponential backoff (`retry_interval_s` doubling up to `max_retry_delay_s`, with jitter).
While the server is away the buffer fills; past `max_buffer` the oldest points are dropped
and counted (`dropped`), so memory is bounded and the newest readings are the ones
delivered when the server is back.

Line protocol: measurement ``telemetry``, tags ``site``, ``device`` and ``port`` (for
per-port series), one field named for the metric, millisecond timestamps. VictoriaMetrics
names the series ``telemetry_<metric>``.
"""

from __future__ import annotations

import logging
import random
import re
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision

from gateway.telemetry.points import Point

log = logging.getLogger(__name__)

MEASUREMENT = "telemetry"
_PORT_SERIES = re.compile(r"^port(\d+)_(.+)$")
_TAG_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "=": r"\="})


@dataclass(frozen=True)
class InfluxOptions:
    """Where and how to write (settings `telemetry.influx_*`)."""

    url: str
    org: str
    bucket: str
    token: str
    batch_size: int = 5000
    flush_interval_s: float = 1.0
    jitter_s: float = 0.2
    retry_interval_s: float = 1.0
    max_retry_delay_s: float = 30.0
    max_buffer: int = 200_000
    timeout_s: float = 10.0


def _prefix(site_id: str, device_id: str, series: str) -> str:
    site, device = site_id.translate(_TAG_ESCAPES), device_id.translate(_TAG_ESCAPES)
    tags = f"site={site},device={device}"
    field = series
    match = _PORT_SERIES.match(series)
    if match is not None:
        tags += f",port={match.group(1)}"
        field = match.group(2)
    return f"{MEASUREMENT},{tags} {field}="


def line(point: Point) -> str:
    """One point as an InfluxDB line-protocol line."""
    prefix = _prefix(point.site_id, point.device_id, point.series)
    return f"{prefix}{point.value!r} {round(point.ts * 1000)}"


class _Lines:
    """A batch as one line-protocol body, the measurement, tags and field name of each
    series made once (the same few thousand series, every batch; bounded: names come from
    devices). One `bytes` body, not a list of lines: influxdb-client serialises a list line
    by line through its type dispatch, ~7 µs a point — more than everything else the
    gateway does with a point."""

    def __init__(self, limit: int = 100_000) -> None:
        self._prefixes: dict[tuple[str, str, str], str] = {}
        self._limit = limit

    def __call__(self, points: Sequence[Point]) -> bytes:
        prefixes, out = self._prefixes, []
        # A message's points share its timestamp: written once per run of equal ones (half
        # of a line's cost was the timestamp).
        last_ts: float | None = None
        stamp = ""
        for site, device, series, value, ts in points:
            prefix = prefixes.get((site, device, series))
            if prefix is None:
                prefix = _prefix(site, device, series)
                if len(prefixes) >= self._limit:
                    prefixes.clear()
                prefixes[(site, device, series)] = prefix
            if ts != last_ts:
                last_ts, stamp = ts, f" {round(ts * 1000)}\n"
            out.append(f"{prefix}{value!r}{stamp}")
        return "".join(out).encode()


class InfluxWriter:
    """A `PointWriter` over the InfluxDB v2 write API, with its own sending thread."""

    def __init__(self, options: InfluxOptions) -> None:
        self.options = options
        self.dropped = 0
        self.written = 0
        self.failures = 0
        self._buffer: deque[Point] = deque()
        self._lines = _Lines()
        self._cond = threading.Condition()
        self._closing = False
        self._client = InfluxDBClient(
            url=options.url,
            token=options.token,
            org=options.org,
            timeout=int(options.timeout_s * 1000),
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)
        self._thread = threading.Thread(target=self._run, name="influx-writer", daemon=True)
        self._thread.start()

    @property
    def buffered(self) -> int:
        """Points waiting to be sent."""
        return len(self._buffer)

    def write(self, points: Sequence[Point]) -> None:
        """Queue points; drops (and counts) the oldest past `max_buffer`. Never blocks on I/O
        (the lines are made on the writer's own thread)."""
        with self._cond:
            self._buffer.extend(points)
            over = len(self._buffer) - self.options.max_buffer
            for _ in range(max(over, 0)):
                self._buffer.popleft()
            self.dropped += max(over, 0)
            if len(self._buffer) >= self.options.batch_size:
                self._cond.notify()

    def _take(self) -> list[Point]:
        n = min(len(self._buffer), self.options.batch_size)
        return [self._buffer.popleft() for _ in range(n)]

    def _put_back(self, batch: list[Point]) -> None:
        """A failed batch goes back to the head, the oldest dropped past the bound."""
        with self._cond:
            self._buffer.extendleft(reversed(batch))
            over = len(self._buffer) - self.options.max_buffer
            for _ in range(max(over, 0)):
                self._buffer.popleft()
            self.dropped += max(over, 0)

    def _wait(self, delay: float) -> bool:
        """Wait for a full batch, the flush interval or the retry delay; True when closing."""
        with self._cond:
            if delay > 0.0:
                self._cond.wait_for(lambda: self._closing, timeout=delay)
            elif len(self._buffer) < self.options.batch_size:
                jitter = random.uniform(0, self.options.jitter_s)  # noqa: S311 (not crypto)
                self._cond.wait_for(
                    lambda: self._closing or len(self._buffer) >= self.options.batch_size,
                    timeout=self.options.flush_interval_s + jitter,
                )
            return self._closing

    def _run(self) -> None:
        delay = 0.0
        while True:
            closing = self._wait(delay)
            with self._cond:
                batch = self._take()
            if not batch:
                if closing:
                    return
                continue
            if self._send(batch):
                delay = 0.0
                continue
            self._put_back(batch)
            if closing:
                return
            delay = min(delay * 2 or self.options.retry_interval_s, self.options.max_retry_delay_s)
            delay += random.uniform(0, self.options.jitter_s)  # noqa: S311 (not crypto)

    def _send(self, batch: list[Point]) -> bool:
        try:
            self._api.write(
                bucket=self.options.bucket,
                org=self.options.org,
                record=self._lines(batch),
                write_precision=cast("WritePrecision", WritePrecision.MS),
            )
        except Exception as exc:  # any failure is the server's: keep the points, retry later
            self.failures += 1
            log.warning("telemetry: InfluxDB write failed (%s); retrying", type(exc).__name__)
            return False
        self.written += len(batch)
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is buffered (one attempt), then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout_s)
        if self._buffer:
            # The buffer is memory: these are not sent by a later process (the embedded
            # store has them; docs/sensors.md, "What a restart loses").
            log.warning(
                "telemetry: %d buffered InfluxDB points not sent at shutdown", len(self._buffer)
            )
        self._api.close()  # type: ignore[no-untyped-call]
        self._client.close()  # type: ignore[no-untyped-call]
