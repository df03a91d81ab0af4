"""The two drains of a parked backlog the ingest benchmark compares: a bare aiomqtt
subscriber (the limit) and a real gateway timed by its end-to-end Acks."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

import contract as c
from benchmarks.ingest.processes import cpu_by_process, cpu_seconds, descendants, signal_all
from benchmarks.ingest.workload import Messages, msg_ids, prepare_db, register
from benchmarks.support.publish import publish_all
from tests.support.broker import MosquittoBroker
from tests.support.gateway_process import start_gateway


@dataclass
class Drain:
    """One consumer's drain: messages timed, seconds, CPU seconds (for the gateway also the
    gateway process's own share, its ingest workers' being the rest)."""

    messages: int
    seconds: float
    cpu_s: float
    parent_cpu_s: float | None = None

    @property
    def eps(self) -> float:
        return self.messages / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.messages * 1e6

    @property
    def parent_cpu_us(self) -> float | None:
        """The gateway process's own CPU µs per message (it leaves events to the workers)."""
        if self.parent_cpu_s is None:
            return None
        return self.parent_cpu_s / self.messages * 1e6


async def bare(broker: MosquittoBroker, messages: Messages, tag: str) -> Drain:
    """A bare subscriber drains the parked `messages`."""
    n = len(messages)
    await register(broker, f"bare-{tag}", ["guanjia/v1/+/+/#"])
    await asyncio.to_thread(publish_all, broker.host, broker.port, messages, f"bare-{tag}")
    got = 0
    t1 = c1 = 0.0
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        identifier=f"bare-{tag}",
        clean_session=False,
        max_inflight_messages=100,
    ) as client:
        async for _ in client.messages:
            got += 1
            if got == 1:
                t1, c1 = time.perf_counter(), time.process_time()
            if got == n:
                break
        elapsed, cpu = time.perf_counter() - t1, time.process_time() - c1
    async with aiomqtt.Client(
        broker.host, broker.port, identifier=f"bare-{tag}", clean_session=True
    ):
        pass  # drop the session
    return Drain(n - 1, elapsed, cpu)


@dataclass
class AckCounter:
    """Counts the msg_ids named by the gateway's Acks; samples the gateway's CPU at the
    first Ack and when every id came back."""

    expected: set[str]
    pid: int = 0
    first_at: float = 0.0
    first_ts: float | None = None
    first_cpu: float = 0.0
    last_at: float = 0.0
    last_cpu: float = 0.0
    last_parent_cpu: float = 0.0
    in_first_batch: int = 0
    seen: set[str] = field(default_factory=set)
    done: threading.Event = field(default_factory=threading.Event)

    def on_ack(self, payload: bytes | bytearray) -> None:
        now = time.perf_counter()
        ack = json.loads(payload)
        if self.first_ts is None:
            self.first_at, self.first_ts = now, ack["ts"]
            self.first_cpu = cpu_seconds(self.pid) if self.pid else 0.0
        ids = set(ack["msg_ids"]) & self.expected
        if ack["ts"] == self.first_ts:
            self.in_first_batch += len(ids - self.seen)
        self.seen |= ids
        if len(self.seen) == len(self.expected) and not self.done.is_set():
            self.last_at = now
            cpu = cpu_by_process(self.pid) if self.pid else {}
            self.last_cpu = sum(cpu.values())
            self.last_parent_cpu = cpu.get(self.pid, 0.0)
            self.done.set()


def listen_acks(broker: MosquittoBroker, counter: AckCounter, tag: str) -> paho.Client:
    """A subscriber to every device's ack topic, feeding `counter` (its own thread)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"acks-{tag}")
    client.on_message = lambda _c, _u, m: counter.on_ack(m.payload)
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect(broker.host, broker.port)
    client.subscribe(c.subscription(c.Channel.ACK), qos=0)
    client.loop_start()
    subscribed.wait(10)
    return client


def gateway_settings(processes: int, tag: str) -> dict[str, Any]:
    """The gateway's settings for a run named `tag`."""
    return {
        # A group per run: the sessions of an earlier round's workers stay in theirs.
        "mqtt__share_group": f"bench-{tag}",
        "mqtt__ingest_processes": processes,
        "sla_tick_s": 5.0,
        "mqtt__batch_max": 1000,
    }


async def gateway(  # noqa: PLR0917
    broker: MosquittoBroker,
    messages: Messages,
    db_url: str,
    tmp: Path,
    tag: str,
    processes: int,
) -> Drain:
    """The gateway drains `messages` parked while it was stopped; timed by its Acks."""
    prepare_db(db_url)
    client_id = f"gw-{tag}"
    process = start_gateway(tmp, db_url, broker, client_id, **gateway_settings(processes, tag))
    counter = AckCounter(msg_ids(messages))
    listener = listen_acks(broker, counter, tag)
    try:
        process.wait_ready()
        sessions = [f"as {client_id}-w{i}" for i in range(1, processes + 1) if processes > 1]
        await wait_connected(broker, sessions)
        # Every process stopped (SIGSTOP) while the backlog is parked, then resumed at once:
        # the drain starts with all of them connected and booted.
        tree = descendants(process.process.pid)
        counter.pid = process.process.pid
        signal_all(tree, signal.SIGSTOP)
        try:
            await asyncio.to_thread(publish_all, broker.host, broker.port, messages, f"gw-{tag}")
        finally:
            cpu0 = cpu_by_process(process.process.pid)
            start = time.perf_counter()
            signal_all(tree, signal.SIGCONT)
        if not await asyncio.to_thread(counter.done.wait, 300):
            raise SystemExit(f"only {len(counter.seen)} of {len(messages)} events acked")
    finally:
        listener.loop_stop()
        listener.disconnect()
        process.stop()
    return Drain(
        len(messages),
        counter.last_at - start,
        counter.last_cpu - sum(cpu0.values()),
        counter.last_parent_cpu - cpu0.get(counter.pid, 0.0),
    )


async def wait_connected(broker: MosquittoBroker, needles: list[str]) -> None:
    """Until the broker's log shows each of `needles` (``as <client id>``), up to 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = broker.log_path.read_text(errors="replace")
        if all(n in text for n in needles):
            return
        await asyncio.sleep(0.1)
    raise SystemExit(f"ingest workers not connected: {needles}")
