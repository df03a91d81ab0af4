"""`mqtt.telemetry_processes = 2`: the telemetry session's MQTT edge in a spawned receiver
process (`gateway.receiver_main`), the batches applied here (`gateway.receiver_ingest`).

Against a real Mosquitto and a real receiver process: every reading is stored once and
acknowledged to its device; nothing is acknowledged to the broker before the gateway
process replied that the batch committed (a receiver killed with SIGKILL while batches are
held gets them all again); a database away stalls the session without losing anything; a
failed batch fails the receiver's session, which restarts and gets the batch again; and a
cancelled session leaves no receiver process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.ingest_loop import ingest_batch, supervise
from gateway.mqtt import IngestState, OnBatch, Outbound
from gateway.receiver_ingest import ReceiverExitedError, ReceiverIngest
from gateway.runtime import Runtime
from gateway.store import StoreUnavailableError
from tests.support.broker import MosquittoBroker
from tests.support.processes import alive
from tests.support.receiver_readings import (
    POINTS,
    close_runtime,
    make_runtime,
    msg_ids,
    readings,
)

pytestmark = pytest.mark.mqtt

REPO_ROOT = Path(__file__).resolve().parent.parent.parent

Batch = Sequence[tuple[str, bytes]]


@pytest.fixture(scope="module", autouse=True)
def resource_tracker() -> None:
    """multiprocessing's resource tracker, which the first spawn starts and which lives as
    long as this interpreter: started before any test, so no test counts it as its leak."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


@pytest.fixture
def runtime(tmp_path: Path, mqtt_broker: MosquittoBroker, site_id: str) -> Iterator[Runtime]:
    made = make_runtime(tmp_path, mqtt_broker.host, mqtt_broker.port, site_id)
    yield made
    close_runtime(made)


def stored(runtime: Runtime) -> int:
    assert runtime.telemetry is not None
    return runtime.telemetry.sqlite.count()


def receiver(runtime: Runtime, on_batch: OnBatch) -> ReceiverIngest:
    mqtt = runtime.settings.mqtt
    assert mqtt.telemetry_processes == 2
    return ReceiverIngest(
        mqtt.telemetry_connection(),
        on_batch,
        filters=mqtt.telemetry_filters,
        name=f"test-receiver-{mqtt.session_id}",
    )


def publish(broker: MosquittoBroker, messages: list[tuple[str, bytes]], client_id: str) -> None:
    """Publish at QoS 1 and wait until the broker has every one."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.max_inflight_messages_set(100)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(20)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


class AckCollector:
    """A device-side subscriber to every node's …/ack: the msg_ids the Acks name."""

    def __init__(self, broker: MosquittoBroker, site: str) -> None:
        self.broker, self.site = broker, site
        self.acked: set[str] = set()
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        async with aiomqtt.Client(
            self.broker.host, self.broker.port, identifier=f"devices-{self.site}"
        ) as client:
            await client.subscribe(f"guanjia/v1/{self.site}/+/ack", qos=1)
            self.subscribed.set()
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                self.acked.update(json.loads(message.payload)["msg_ids"])


@contextlib.asynccontextmanager
async def acks(broker: MosquittoBroker, site: str) -> AsyncIterator[AckCollector]:
    collector = AckCollector(broker, site)
    task = asyncio.create_task(collector.run())
    try:
        await asyncio.wait_for(collector.subscribed.wait(), 10)
        yield collector
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def running(ingest: ReceiverIngest, *, supervised: bool = False) -> AsyncIterator[None]:
    """Run the session (under `supervise`, as the gateway does, when `supervised`) until the
    block ends, then cancel it; its receiver process must be gone by then."""
    task = asyncio.create_task(supervise(ingest, 0.2) if supervised else ingest.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert ingest.process is not None
        assert not ingest.process.is_alive()


class StateLog:
    """The distinct states a session went through, sampled every few ms."""

    def __init__(self, ingest: ReceiverIngest) -> None:
        self.ingest = ingest
        self.states: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            state = self.ingest.state.value
            if not self.states or self.states[-1] != state:
                self.states.append(state)
            await asyncio.sleep(0.005)

    async def __aenter__(self) -> StateLog:
        self.states.append(self.ingest.state.value)  # before anything can change it
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def wait_until(
    check: Callable[[], bool], what: Callable[[], object], within_s: float
) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for: {what()}")
        await asyncio.sleep(0.02)


async def all_stored_and_acked(
    runtime: Runtime, collector: AckCollector, messages: list[tuple[str, bytes]], within_s: float
) -> None:
    """Every reading stored, every msg_id acknowledged to its device; then, a moment later,
    still exactly once (a redelivered message stores nothing twice)."""
    want, ids = len(messages) * POINTS, msg_ids(messages)
    await wait_until(
        lambda: stored(runtime) >= want and collector.acked >= ids,
        lambda: (
            f"{stored(runtime)} of {want} points stored, "
            f"{len(collector.acked & ids)} of {len(ids)} msg_ids acked"
        ),
        within_s,
    )
    await asyncio.sleep(0.3)
    assert stored(runtime) == want
    assert collector.acked == ids


async def test_every_reading_is_stored_once_and_acknowledged_to_its_device(
    runtime: Runtime, mqtt_broker: MosquittoBroker, site_id: str
) -> None:
    messages = readings(site_id, 300, "e2e")
    calls: list[int] = []

    async def apply(batch: Batch) -> list[Outbound]:
        calls.append(len(batch))
        return await ingest_batch(runtime, batch)

    ingest = receiver(runtime, apply)
    async with acks(mqtt_broker, site_id) as collector, running(ingest):
        await asyncio.wait_for(ingest.connected.wait(), 15)
        assert ingest.process is not None
        assert ingest.process.pid != os.getpid()
        assert ingest.process.is_alive()
        await wait_until(lambda: ingest.state is IngestState.RUNNING, lambda: ingest.state, 5)
        await asyncio.to_thread(publish, mqtt_broker, messages, f"pub-{site_id}")
        await all_stored_and_acked(runtime, collector, messages, 20)
        assert ingest.state is IngestState.RUNNING
        assert ingest.failure is None
        assert ingest.received == len(messages), "no message was delivered twice"
        assert sum(calls) == len(messages)
        assert ingest.batches == len(calls)
        # batch_max 100: at most 50 a batch, two in flight.
        assert max(calls) <= runtime.settings.mqtt.batch_max // 2
        assert ingest.pending == 0
        await asyncio.sleep(0.5)  # the last status frame: the Acks' PUBACKs have come back
        assert ingest.publish_failures == 0
    assert not ingest.connected.is_set()


async def test_nothing_is_acknowledged_before_the_reply_a_killed_receiver_gets_it_all_again(
    runtime: Runtime, mqtt_broker: MosquittoBroker, site_id: str
) -> None:
    """Batches handed to the gateway process and never answered must not be acknowledged:
    SIGKILL the receiver while it has two batches in flight (one held unanswered by the
    gateway process, the next waiting behind it) and the next session gets them again (an
    acknowledgement before the reply turns this red: those readings are lost)."""
    messages = readings(site_id, 300, "held")
    hold = True
    held: list[int] = []
    one_held = asyncio.Event()

    async def apply(batch: Batch) -> list[Outbound]:
        if hold:
            held.append(len(batch))
            one_held.set()
            await asyncio.Event().wait()  # never answered (cancelled with the session)
        return await ingest_batch(runtime, batch)

    ingest = receiver(runtime, apply)
    async with acks(mqtt_broker, site_id) as collector:
        task = asyncio.create_task(ingest.run())
        await asyncio.wait_for(ingest.connected.wait(), 15)
        await asyncio.to_thread(publish, mqtt_broker, messages, f"pub-{site_id}")
        await asyncio.wait_for(one_held.wait(), 10)
        await asyncio.sleep(0.5)  # time for any (wrong) PUBACK to reach the broker
        assert len(held) == 1, "the gateway process applies one batch at a time"
        assert stored(runtime) == 0
        assert collector.acked == set()
        first = ingest.process
        assert first is not None
        assert first.pid is not None
        os.kill(first.pid, signal.SIGKILL)
        with pytest.raises(ReceiverExitedError, match="exit code -9"):
            await asyncio.wait_for(task, 15)
        assert not first.is_alive()
        assert not ingest.connected.is_set()
        assert ingest.state is IngestState.CONNECTING
        assert ingest.pending == 0

        hold = False
        async with running(ingest):
            await all_stored_and_acked(runtime, collector, messages, 20)
            assert ingest.process is not first
            # The held batches came again (received counts every delivery).
            assert ingest.received >= len(messages) + sum(held)


async def test_a_database_away_stalls_the_session_and_loses_nothing(
    runtime: Runtime, mqtt_broker: MosquittoBroker, site_id: str
) -> None:
    messages = readings(site_id, 150, "stall")
    refusals = 2
    attempts: list[int] = []

    async def apply(batch: Batch) -> list[Outbound]:
        attempts.append(len(batch))
        if len(attempts) <= refusals:
            raise StoreUnavailableError("the database is away")
        return await ingest_batch(runtime, batch)

    ingest = receiver(runtime, apply)
    async with acks(mqtt_broker, site_id) as collector, running(ingest):
        await asyncio.wait_for(ingest.connected.wait(), 15)
        await wait_until(lambda: ingest.state is IngestState.RUNNING, lambda: ingest.state, 5)
        async with StateLog(ingest) as log:
            await asyncio.to_thread(publish, mqtt_broker, messages, f"pub-{site_id}")
            await wait_until(lambda: ingest.state is IngestState.STALLED, lambda: log.states, 5)
            assert stored(runtime) == 0
            assert collector.acked == set()
            await all_stored_and_acked(runtime, collector, messages, 20)
            assert ingest.state is IngestState.RUNNING
            assert ingest.failure is None
    assert log.states == ["running", "stalled", "running"], log.states
    # Retried in this process: the receiver held the batch and delivered nothing twice.
    assert ingest.received == len(messages)
    assert len(attempts) > refusals


async def test_a_failed_batch_fails_the_receivers_session_which_gets_it_again(
    runtime: Runtime, mqtt_broker: MosquittoBroker, site_id: str
) -> None:
    messages = readings(site_id, 200, "fail")
    failures: list[int] = []

    async def apply(batch: Batch) -> list[Outbound]:
        if not failures:
            failures.append(len(batch))
            raise RuntimeError("a bug in the ingest")
        return await ingest_batch(runtime, batch)

    ingest = receiver(runtime, apply)
    async with acks(mqtt_broker, site_id) as collector, running(ingest, supervised=True):
        await asyncio.wait_for(ingest.connected.wait(), 15)
        await wait_until(lambda: ingest.state is IngestState.RUNNING, lambda: ingest.state, 5)
        first = ingest.process
        async with StateLog(ingest) as log:
            await asyncio.to_thread(publish, mqtt_broker, messages, f"pub-{site_id}")
            await wait_until(lambda: ingest.state is IngestState.FAILED, lambda: log.states, 10)
            assert "RuntimeError: a bug in the ingest" in str(ingest.failure)
            await all_stored_and_acked(runtime, collector, messages, 20)
            await wait_until(lambda: ingest.state is IngestState.RUNNING, lambda: log.states, 10)
            assert ingest.failure is None
        # The receiver's own session restarted: same process, the failed batch again.
        assert ingest.process is first
        assert ingest.received >= len(messages) + failures[0]
    assert log.states == ["running", "failed", "running"], log.states


async def test_cancelling_the_session_leaves_no_receiver_process(
    runtime: Runtime, mqtt_broker: MosquittoBroker
) -> None:
    async def apply(batch: Batch) -> list[Outbound]:
        return await ingest_batch(runtime, batch)

    ingest = receiver(runtime, apply)
    task = asyncio.create_task(ingest.run())
    await asyncio.wait_for(ingest.connected.wait(), 15)
    process = ingest.process
    assert process is not None
    assert process.is_alive()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    # At once, not "soon": the telemetry lease hands the session over when run() ended.
    assert not process.is_alive()
    assert process.exitcode is not None
    assert not ingest.connected.is_set()


class GatewayProcess:
    """`python -m tests.support.receiver_readings`: a gateway process of its own (the
    telemetry session with a receiver process), to SIGKILL."""

    def __init__(self, tmp: Path, broker: MosquittoBroker, site: str) -> None:
        self.args = [str(tmp), broker.host, str(broker.port), site]
        self.process: asyncio.subprocess.Process | None = None
        self.receivers: list[int] = []

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.receiver_readings",
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            cwd=REPO_ROOT,
        )

    async def receiver(self, within_s: float = 20) -> int:
        """The pid of the next receiver process it reports connected."""
        assert self.process is not None
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), within_s)
        assert line.startswith(b"receiver "), line
        self.receivers.append(int(line.split()[1]))
        return self.receivers[-1]

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Signal it; its exit code once it and its receiver are gone (`wait` also waits for
        its stdout to close, which a receiver left running would hold open)."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(sig)
        await gone(self.process.pid, 20)
        await gone(self.receivers[-1], 10)
        return await asyncio.wait_for(self.process.wait(), 20)


async def gone(pid: int, within_s: float) -> None:
    await wait_until(lambda: not alive(pid), lambda: f"process {pid} still running", within_s)


@pytest.mark.slow
async def test_a_flood_survives_sigkill_of_either_process(
    tmp_path: Path, mqtt_broker: MosquittoBroker, site_id: str
) -> None:
    """Mid-flood, SIGKILL the gateway process (its receiver must end on its own: the socket
    closed), then, under the next gateway process, its receiver: every reading is stored
    exactly once and acknowledged to its device."""
    messages = readings(site_id, 4000, "flood")
    ids = msg_ids(messages)
    async with acks(mqtt_broker, site_id) as collector:
        first = GatewayProcess(tmp_path, mqtt_broker, site_id)
        await first.start()
        try:
            first_receiver = await first.receiver()
            flood = asyncio.create_task(
                asyncio.to_thread(publish, mqtt_broker, messages, f"pub-{site_id}")
            )
            await wait_until(
                lambda: len(collector.acked) >= len(ids) // 4, lambda: len(collector.acked), 60
            )
            # Its receiver, orphaned, must end on its own: the socket closed.
            assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
        finally:
            await first.stop(signal.SIGKILL)
        assert not alive(first_receiver)
        acked_before = len(collector.acked)
        assert acked_before < len(ids), "the flood ended before the kill: make it bigger"

        second = GatewayProcess(tmp_path, mqtt_broker, site_id)
        await second.start()
        try:
            second_receiver = await second.receiver()
            await wait_until(
                lambda: len(collector.acked) >= acked_before + (len(ids) - acked_before) // 3,
                lambda: len(collector.acked),
                60,
            )
            os.kill(second_receiver, signal.SIGKILL)
            third_receiver = await second.receiver()  # supervise started another
            assert third_receiver != second_receiver
            await flood
            await wait_until(
                lambda: collector.acked >= ids,
                lambda: f"{len(collector.acked & ids)} of {len(ids)} msg_ids acked",
                60,
            )
            await asyncio.sleep(0.5)
        finally:
            assert await second.stop() == 0
        assert not alive(third_receiver)
    runtime = make_runtime(tmp_path, mqtt_broker.host, mqtt_broker.port, site_id)
    try:
        assert stored(runtime) == len(messages) * POINTS
    finally:
        close_runtime(runtime)
