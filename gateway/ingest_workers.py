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
(``BEGIN IMMEDIATE``, taking turns on a file lock first: `StoreBase.ingest_tx`), PostgreSQL
reruns a batch that lost a race.

A worker that committed changes writes one byte to its pipe; the gateway process then reads
the change feed at once (`ChangeFeed.wake`) instead of at its next poll, so consoles see a
worker's tickets as soon as the gateway's own. A worker exits when the gateway process is
gone (it checks its parent every `PARENT_CHECK_S`); the gateway process restarts a worker
that died, and at start ends the sessions of workers no longer configured
(`drop_stale_worker_sessions`). Workers' metrics are their own (not on /metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from gateway.config import GatewaySettings

log = logging.getLogger(__name__)

PARENT_CHECK_S = 1.0
"""How often a worker checks that the gateway process that started it still runs."""

RESTART_CHECK_S = 1.0
"""How often the gateway process checks its workers."""


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

    def __init__(self, settings: GatewaySettings, wake: Callable[[], None]) -> None:
        self.settings = settings
        self.wake = wake
        self.count = settings.mqtt.ingest_processes
        self._context = multiprocessing.get_context("spawn")
        self._processes: dict[int, BaseProcess] = {}
        self._pipes: dict[int, Connection] = {}
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
        self._processes[index] = process
        self._pipes[index] = reader
        os.set_blocking(reader.fileno(), False)
        asyncio.get_running_loop().add_reader(reader.fileno(), self._woken, reader)

    def _woken(self, reader: Connection) -> None:
        try:
            data = os.read(reader.fileno(), 65536)
        except BlockingIOError:
            return
        if not data:  # the worker's end closed: it died; `supervise` restarts it
            self._unwatch(reader)
            return
        self.wake()

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
    from gateway.main import build_runtime, ingest_batch, refuse, supervise
    from gateway.mqtt import MqttIngest

    mqtt = settings.mqtt.ingest_worker(index)
    worker_settings = settings.model_copy(
        update={"mqtt": mqtt, "telemetry": settings.telemetry.model_copy(update={"enabled": False})}
    )
    runtime = build_runtime(worker_settings)

    def changed() -> None:
        # One byte is enough: the gateway reads the whole feed when woken.
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(wake.fileno(), b"\0")

    ingest = MqttIngest(
        mqtt,
        lambda batch: ingest_batch(runtime, batch, changed),
        lambda refused: refuse(runtime, refused),
        runtime.metrics.ack_publish_failures.inc,
        filters=mqtt.worker_filters,
        mqtt5=False,
    )
    task = asyncio.create_task(supervise(ingest))
    try:
        # `supervise` never returns; the loop ends when the parent is gone.
        while os.getppid() == parent:  # noqa: ASYNC110 (no event says "parent died")
            await asyncio.sleep(PARENT_CHECK_S)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        runtime.store.close()
