"""Ingest worker processes: more cores for DetectionEvents (`mqtt.ingest_processes`).

One Python process cannot drain a broker at its pace (receiving, decoding and applying a
message each cost tens of µs, all under one GIL), so with ``ingest_processes = N > 1`` the
gateway process starts N workers and leaves the events to them (it keeps the other
channels). Each is a full ingest replica for events only: its own persistent MQTT 3.1.1
session in the shared group (`MqttSettings.ingest_worker`, `MqttIngest.mqtt5`), its own
database connection, its own transactions, and it publishes its own end-to-end Acks and
acknowledges to the broker only after its commit, exactly as the gateway process does. The
unique keys that already arbitrate between replicas (processed ids, event links, one open
ticket per key) keep every event applied once; SQLite serialises the writers
(``BEGIN IMMEDIATE``, taking turns on a file lock first: `Database.ingest_tx`), PostgreSQL
reruns a batch that lost a race.

Each worker has one pipe to the gateway process, of lines: an empty line when it committed
changes (the gateway process then reads the change feed at once, `ChangeFeed.wake`, instead
of at its next poll, so consoles see a worker's tickets as soon as the gateway's own), and
every `REPORT_EVERY_S` a JSON line of its counters' totals, served on the gateway's
/metrics with a ``worker`` label (`WorkerCounters`). A worker exits when the gateway process
is gone (it checks its parent every `PARENT_CHECK_S`); the gateway process restarts a worker
that died, and at start ends the sessions of workers no longer configured
(`drop_stale_worker_sessions`). Broker accounts: `gateway.provisioning.gateway_accounts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from gateway.config import GatewaySettings
from gateway.heap import settle
from gateway.metrics import CounterSample, WorkerCounters

log = logging.getLogger(__name__)

PARENT_CHECK_S = 1.0
"""How often a worker checks that the gateway process that started it still runs."""

RESTART_CHECK_S = 1.0
"""How often the gateway process checks its workers."""

REPORT_EVERY_S = 1.0
"""How often a worker sends its counters (when they changed)."""

MAX_REPORT_BYTES = 4096
"""A report fits in one atomic pipe write (POSIX PIPE_BUF >= 512; 4096 on Linux); a
worker's few counter series take a fraction of it. A longer one is not sent."""


MAX_WORKERS = 8
"""The most workers `mqtt.ingest_processes` allows (its bound)."""


async def drop_stale_worker_sessions(settings: GatewaySettings) -> list[str]:
    """End the sessions of workers beyond `mqtt.ingest_processes` (all of them when it is 1),
    left by an earlier configuration: in the shared group they would be handed events that no
    process reads. Returns the sessions ended."""
    from gateway.mqtt import drop_session

    mqtt = settings.mqtt
    first = mqtt.ingest_processes + 1 if mqtt.ingest_processes > 1 else 1
    ended = []
    for index in range(first, MAX_WORKERS + 1):
        worker = mqtt.ingest_worker(index)
        if await drop_session(worker):
            ended.append(worker.session_id)
    return ended


class IngestWorkers:
    """The gateway process's side: start, watch, restart and stop the workers."""

    def __init__(
        self,
        settings: GatewaySettings,
        wake: Callable[[], None],
        counters: WorkerCounters | None = None,
    ) -> None:
        self.settings = settings
        self.wake = wake
        self.counters = counters if counters is not None else WorkerCounters()
        self.count = settings.mqtt.ingest_processes
        self._context = multiprocessing.get_context("spawn")
        self._processes: dict[int, BaseProcess] = {}
        self._pipes: dict[int, Connection] = {}
        self._partial: dict[int, bytes] = {}
        self.restarts = 0

    def start(self) -> None:
        """Start every worker (indexes 1…ingest_processes)."""
        for index in range(1, self.count + 1):
            self._start(index)

    def _start(self, index: int) -> None:
        reader, writer = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=worker_main,
            args=(self.settings, index, writer, os.getpid()),
            name=f"guanjia-ingest-w{index}",
            daemon=True,
        )
        process.start()
        writer.close()
        old = self._pipes.pop(index, None)
        if old is not None:
            self._unwatch(old)
        self._partial.pop(index, None)
        self._processes[index] = process
        self._pipes[index] = reader
        os.set_blocking(reader.fileno(), False)
        asyncio.get_running_loop().add_reader(reader.fileno(), self._heard, index, reader)

    def _heard(self, index: int, reader: Connection) -> None:
        try:
            data = os.read(reader.fileno(), 65536)
        except BlockingIOError:
            return
        if not data:  # the worker's end closed: it died; `supervise` restarts it
            self._unwatch(reader)
            return
        *lines, self._partial[index] = (self._partial.get(index, b"") + data).split(b"\n")
        if any(not line for line in lines):
            self.wake()
        for line in lines:
            if line:
                self._report(index, line)

    def _report(self, index: int, line: bytes) -> None:
        try:
            samples = [
                (str(n), {str(k): str(v) for k, v in lb.items()}, float(v))
                for n, lb, v in json.loads(line)
            ]
        except (ValueError, TypeError, AttributeError):
            log.warning("ingest worker %d sent an unreadable report; ignored", index)
            return
        self.counters.update(index, samples)

    def _unwatch(self, reader: Connection) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(reader.fileno())
        reader.close()

    async def supervise(self) -> None:
        """Restart workers that died, until cancelled."""
        while True:
            await asyncio.sleep(RESTART_CHECK_S)
            for index, process in list(self._processes.items()):
                if not process.is_alive():
                    log.warning(
                        "ingest worker %d exited (code %s); restarting it", index, process.exitcode
                    )
                    self.restarts += 1
                    self.counters.restarted(index)
                    self._start(index)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop every worker (SIGTERM, then SIGKILL after `timeout_s`)."""
        for reader in self._pipes.values():
            self._unwatch(reader)
        self._pipes.clear()
        for process in self._processes.values():
            process.terminate()
        for process in self._processes.values():
            process.join(timeout_s)
            if process.is_alive():
                process.kill()
                process.join()
        self._processes.clear()


def worker_main(settings: GatewaySettings, index: int, wake: Connection, parent: int) -> None:
    """A worker process's entry point (spawned by `IngestWorkers`)."""
    line = f"%(levelname)s ingest-w{index} %(name)s: %(message)s"
    logging.basicConfig(level=logging.WARNING, format=line)
    os.set_blocking(wake.fileno(), False)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run_worker(settings, index, wake, parent))


async def _run_worker(settings: GatewaySettings, index: int, wake: Connection, parent: int) -> None:
    # Imported here: gateway.main imports this module to start the workers.
    from gateway.ingest_loop import ingest_batch, refuse, supervise
    from gateway.main import build_runtime
    from gateway.mqtt import MqttIngest

    mqtt = settings.mqtt.ingest_worker(index)
    worker_settings = settings.model_copy(
        update={"mqtt": mqtt, "telemetry": settings.telemetry.model_copy(update={"enabled": False})}
    )
    runtime = build_runtime(worker_settings)
    settle()  # start-up is done: keep its objects out of every collection (`gateway.heap`)

    def changed() -> None:
        # An empty line is enough: the gateway reads the whole feed when woken. A full pipe
        # holds wake-ups it has not read yet, so this one is not needed.
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(wake.fileno(), b"\n")

    ingest = MqttIngest(
        mqtt,
        lambda batch: ingest_batch(runtime, batch, changed),
        lambda refused: refuse(runtime, refused),
        runtime.metrics.ack_publish_failures.inc,
        filters=mqtt.worker_filters,
        mqtt5=False,
    )
    task = asyncio.create_task(supervise(ingest))
    reporter = asyncio.create_task(_report_counters(runtime.metrics.counter_samples, wake))
    try:
        # `supervise` never returns; the loop ends when the parent is gone.
        while os.getppid() == parent:  # noqa: ASYNC110 (no event says "parent died")
            await asyncio.sleep(PARENT_CHECK_S)
    finally:
        for running in (task, reporter):
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        runtime.store.close()


def report_line(samples: list[CounterSample]) -> bytes | None:
    """One report for the pipe, or None when it would not fit one atomic write."""
    line = json.dumps(samples, separators=(",", ":")).encode() + b"\n"
    return line if len(line) <= MAX_REPORT_BYTES else None


async def _report_counters(samples: Callable[[], list[CounterSample]], pipe: Connection) -> None:
    sent: list[CounterSample] | None = None
    while True:
        await asyncio.sleep(REPORT_EVERY_S)
        now = samples()
        if now == sent:
            continue
        line = report_line(now)
        if line is None:
            log.warning("counters report too long for the pipe (%d series); not sent", len(now))
            continue
        try:
            os.write(pipe.fileno(), line)
        except BlockingIOError:
            continue  # the gateway is behind on reading: the next report has the totals
        except BrokenPipeError:
            return
        sent = now
