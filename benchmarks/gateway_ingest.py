"""Events/s the gateway commits ÷ a bare aiomqtt subscriber draining the same broker.

    python -m benchmarks.gateway_ingest [--events 10000] [--rounds 3] [--processes 2]
                                        [--database-url URL] [--live-rate 3000]
    python -m benchmarks.gateway_ingest --handler-only [--batch 100] (`benchmarks.ingest.handler`)

Starts its own Mosquitto. The workload is realistic in its keys: 200 cameras with 3 zones
each (600 (device, zone) ticket keys), tracks of one start, 0–3 updates and one end, laid
out in time so that a key sees its first ticket opened, events merged into an open ticket,
and tickets auto-resolved and then reopened within the cool-down. Each round, interleaved:

1. the limit: the same messages parked in a persistent session, then drained by a bare
   aiomqtt client (QoS 1) that only counts them;
2. the gateway: the same messages parked in the gateway's persistent sessions (its shared
   group: the gateway process and `--processes - 1` ingest workers), then a real
   `guanjia gateway run` started on them. Committed is measured from outside, by the
   end-to-end Acks the gateway publishes after each commit (every msg_id must come back).

Rates exclude the first delivery (the bare client's first message, the gateway's first
committed batch), so connecting and booting are not timed. CPU µs per message is each
consumer's CPU time (the gateway's process tree) over the same span, divided by the
messages in it. After the rounds, a live run publishes the workload at `--live-rate` to a
running gateway and reports what it committed per second and how far behind it ended.

Prints every round (with the load average: the machine may be shared), then the median
rates, the ratio gateway ÷ bare, and the limits the issue sets (≥ 0.6 and ≥ 5,100/s on
SQLite, ≥ 0.4 on PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import random
import signal
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

import contract as c
from benchmarks.ingest import handler as ingest_handler
from benchmarks.support.machine import loadavg
from benchmarks.support.result import emit, make
from benchmarks.support.stats import percentile
from gateway.store import Store, migrate
from tests.support.broker import MosquittoBroker
from tests.support.gateway_process import GatewayProcess, start_gateway
from tests.support.messages import event
from tests.support.postgres import isolated_schema
from tests.support.seed import seed_site

SITE = "bench"
CAMERAS = tuple(f"cam-{i:03d}" for i in range(200))
ZONES = ("z0", "z1", "z2")
SQLITE_LIMITS = {"ratio": 0.6, "eps": 5100.0}
POSTGRES_LIMITS = {"ratio": 0.4, "eps": 0.0}


def workload(n: int, tag: str, seed: int = 7) -> list[tuple[str, bytes]]:
    """About `n` DetectionEvents (topic, payload) over 600 keys, in publication order."""
    rng = random.Random(seed)
    timed: list[tuple[float, str, bytes]] = []
    track = 0
    while len(timed) < n:
        camera, zone = rng.choice(CAMERAS), rng.choice(ZONES)
        start = rng.uniform(0, 3600)
        duration = rng.uniform(30, 600)
        updates = rng.randint(0, 3)
        event_id = f"ev-{tag}-{track:06d}"
        track += 1
        phases = [c.EventPhase.START] + [c.EventPhase.UPDATE] * updates + [c.EventPhase.END]
        for seq, phase in enumerate(phases):
            ts = start + duration * seq / (len(phases) - 1)
            message = event(
                SITE,
                camera,
                event_id,
                phase=phase,
                seq=seq,
                zone_id=zone,
                ts=1_795_300_000.0 + ts,
            )
            topic = str(c.event_topic(SITE, camera))
            timed.append((ts, topic, c.encode(message)))
    timed.sort(key=lambda item: item[0])
    return [(topic, payload) for _, topic, payload in timed]


def park(broker: MosquittoBroker, messages: list[tuple[str, bytes]], tag: str) -> None:
    """Publish `messages` at QoS 1 and wait for every PUBACK."""
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{tag}")
    pub.max_inflight_messages_set(1000)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    infos = [pub.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(120)
    pub.loop_stop()
    pub.disconnect()


async def register(broker: MosquittoBroker, client_id: str, filters: list[str]) -> None:
    """A persistent session subscribed to `filters` (QoS 1), left offline."""
    async with aiomqtt.Client(
        broker.host, broker.port, identifier=client_id, clean_session=False
    ) as client:
        await client.subscribe([(f, 1) for f in filters])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(x) for x in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


@dataclass
class Drain:
    """One consumer's drain: messages timed, seconds, CPU seconds."""

    messages: int
    seconds: float
    cpu_s: float

    @property
    def eps(self) -> float:
        return self.messages / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.messages * 1e6


async def bare(broker: MosquittoBroker, messages: list[tuple[str, bytes]], tag: str) -> Drain:
    """A bare subscriber drains the parked `messages`."""
    n = len(messages)
    await register(broker, f"bare-{tag}", ["guanjia/v1/+/+/#"])
    await asyncio.to_thread(park, broker, messages, f"bare-{tag}")
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
            self.last_cpu = cpu_seconds(self.pid) if self.pid else 0.0
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


def msg_ids(messages: list[tuple[str, bytes]]) -> set[str]:
    return {json.loads(payload)["msg_id"] for _, payload in messages}


def prepare_db(db_url: str) -> None:
    migrate(db_url)
    store = Store(db_url)
    seed_site(store, SITE, CAMERAS)
    store.close()


def gateway_settings(processes: int, tag: str) -> dict[str, Any]:
    return {
        # A group per run: the sessions of an earlier round's workers stay in theirs.
        "mqtt__share_group": f"bench-{tag}",
        "mqtt__ingest_processes": processes,
        "sla_tick_s": 5.0,
        "mqtt__batch_max": 1000,
    }


async def gateway(  # noqa: PLR0917
    broker: MosquittoBroker,
    messages: list[tuple[str, bytes]],
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
            await asyncio.to_thread(park, broker, messages, f"gw-{tag}")
        finally:
            cpu0 = cpu_seconds(process.process.pid)
            start = time.perf_counter()
            signal_all(tree, signal.SIGCONT)
        if not await asyncio.to_thread(counter.done.wait, 300):
            raise SystemExit(f"only {len(counter.seen)} of {len(messages)} events acked")
    finally:
        listener.loop_stop()
        listener.disconnect()
        process.stop()
    return Drain(len(messages), counter.last_at - start, counter.last_cpu - cpu0)


def descendants(pid: int) -> list[int]:
    """`pid` and every process under it."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").iterdir():
            todo += [int(x) for x in (task / "children").read_text().split()]
    return out


def signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


async def wait_connected(broker: MosquittoBroker, needles: list[str]) -> None:
    """Until the broker's log shows each of `needles` (``as <client id>``), up to 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = broker.log_path.read_text(errors="replace")
        if all(n in text for n in needles):
            return
        await asyncio.sleep(0.1)
    raise SystemExit(f"ingest workers not connected: {needles}")


@dataclass
class Live:
    """A live run: published at `rate`, committed per second, lag at the end."""

    rate: float
    eps: float
    lag_s: float
    cpu_us: float


async def live(  # noqa: PLR0917
    broker: MosquittoBroker,
    messages: list[tuple[str, bytes]],
    db_url: str,
    tmp: Path,
    rate: float,
    processes: int,
) -> Live:
    """Publish `messages` at `rate` to a running gateway; committed/s and final lag."""
    prepare_db(db_url)
    process: GatewayProcess = start_gateway(
        tmp, db_url, broker, "gw-live", **gateway_settings(processes, "live")
    )
    counter = AckCounter(msg_ids(messages))
    listener = listen_acks(broker, counter, "live")
    try:
        process.wait_ready()
        workers = range(1, processes + 1) if processes > 1 else range(0)
        await wait_connected(broker, [f"as gw-live-w{i}" for i in workers])
        counter.pid = process.process.pid
        cpu0 = cpu_seconds(process.process.pid)
        start, sent_at = await asyncio.to_thread(pace, broker, messages, rate)
        if not await asyncio.to_thread(counter.done.wait, 300):
            raise SystemExit(f"live: only {len(counter.seen)} of {len(messages)} acked")
        cpu = counter.last_cpu - cpu0
    finally:
        listener.loop_stop()
        listener.disconnect()
        process.stop()
    n = len(messages)
    return Live(rate, n / (counter.last_at - start), counter.last_at - sent_at, cpu / n * 1e6)


def pace(
    broker: MosquittoBroker, messages: list[tuple[str, bytes]], rate: float
) -> tuple[float, float]:
    """Publish at `rate` per second (QoS 1); returns when sending started and ended."""
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="pub-live")
    pub.max_inflight_messages_set(1000)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    start = time.perf_counter()
    for i, (topic, payload) in enumerate(messages):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        pub.publish(topic, payload, qos=1)
    ended = time.perf_counter()
    pub.loop_stop()
    pub.disconnect()
    return start, ended


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{platform.node()}: {os.cpu_count()} cores, {model}, Python {platform.python_version()}"


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _median(values: Iterable[float]) -> float:
    return percentile(list(values), 50)


async def main_async(args: argparse.Namespace) -> None:
    load0 = loadavg()
    postgres = args.database_url is not None
    limits = POSTGRES_LIMITS if postgres else SQLITE_LIMITS
    print(f"machine: {machine()}")
    print(f"date:    {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"database: {'PostgreSQL' if postgres else 'SQLite'}; gateway processes: "
        f"{args.processes}; events: {args.events} per round, 200 cameras × 3 zones"
    )
    bares: list[Drain] = []
    gws: list[Drain] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = MosquittoBroker(tmp / "broker")
        broker.start()
        try:
            for r in range(args.rounds):
                messages = workload(args.events, f"r{r}", seed=r)
                before = load()
                b = await bare(broker, messages, f"r{r}")
                for db_url in databases(args.database_url, tmp / f"r{r}.db"):
                    g = await gateway(broker, messages, db_url, tmp, f"r{r}", args.processes)
                bares.append(b)
                gws.append(g)
                print(
                    f"round {r + 1}: bare {b.eps:8,.0f}/s {b.cpu_us:5.0f} µs CPU/msg | gateway "
                    f"{g.eps:7,.0f}/s {g.cpu_us:5.0f} µs CPU/msg | ratio {g.eps / b.eps:.3f} | "
                    f"{before} → {load()}"
                )
            live_run = None
            if args.live_rate > 0:
                messages = workload(args.events, "live", seed=99)
                for db_url in databases(args.database_url, tmp / "live.db"):
                    live_run = await live(
                        broker, messages, db_url, tmp, args.live_rate, args.processes
                    )
        finally:
            broker.stop()
    bare_eps = _median(b.eps for b in bares)
    gw_eps = _median(g.eps for g in gws)
    ratio = _median(g.eps / b.eps for b, g in zip(bares, gws, strict=True))
    print(
        f"bare aiomqtt subscriber (the limit): {bare_eps:8,.0f} events/s, "
        f"{_median(b.cpu_us for b in bares):4.0f} µs CPU/msg (median of {len(bares)})"
    )
    print(
        f"gateway, committed and acked:       {gw_eps:8,.0f} events/s, "
        f"{_median(g.cpu_us for g in gws):4.0f} µs CPU/msg (median of {len(gws)})"
    )
    print(
        f"ratio gateway / bare: {ratio:.3f} (median of per-round ratios; limit ≥ "
        f"{limits['ratio']}) {'MET' if ratio >= limits['ratio'] else 'MISSED'}"
    )
    if limits["eps"]:
        met = "MET" if gw_eps >= limits["eps"] else "MISSED"
        print(f"gateway events/s: {gw_eps:,.0f} (limit ≥ {limits['eps']:,.0f}) {met}")
    database = "PostgreSQL" if postgres else "SQLite"
    emit(
        make(
            benchmark="gateway_ingest",
            name=f"events committed and acked/s, {database}, {args.processes} ingest processes",
            figure=gw_eps,
            unit="events/s",
            limit=bare_eps,
            limit_name="bare aiomqtt QoS 1 subscriber draining the same parked backlog",
            target=f"ratio >= {limits['ratio']}"
            + (f", >= {limits['eps']:,.0f} events/s" if limits["eps"] else ""),
            cpu_us_per_item=_median(g.cpu_us for g in gws),
            limit_cpu_us_per_item=_median(b.cpu_us for b in bares),
            rounds=len(gws),
            size=f"{args.events} events, 200 cameras x 3 zones, start/updates/end",
            loadavg_start=load0,
            notes=f"median of per-round ratios {ratio:.3f}",
        )
    )
    if live_run is not None:
        print(
            f"live: published at {live_run.rate:,.0f}/s → committed {live_run.eps:,.0f}/s, "
            f"{live_run.cpu_us:.0f} µs CPU/msg, last ack {live_run.lag_s * 1000:.0f} ms after "
            f"the last publish; {load()}"
        )


def databases(url: str | None, sqlite_path: Path) -> Iterable[str]:
    """The round's database: a fresh SQLite file, or a private PostgreSQL schema (dropped
    afterwards)."""
    if url is None:
        return [f"sqlite:///{sqlite_path}"]
    return isolated_schema(url)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2, help="mqtt.ingest_processes")
    parser.add_argument("--live-rate", type=float, default=3000.0, help="0: no live run")
    parser.add_argument(
        "--database-url",
        default=None,
        help="default: SQLite in a temp dir; PostgreSQL runs in a private schema",
    )
    parser.add_argument("--quick", action="store_true", help="The report size (the default).")
    parser.add_argument("--smoke", action="store_true", help="Smallest run (not a figure).")
    parser.add_argument(
        "--handler-only", action="store_true", help="No MQTT: `benchmarks.ingest.handler`."
    )
    parser.add_argument("--batch", type=int, default=100, help="--handler-only batch size")
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.rounds, args.live_rate = 300, 1, 0.0
    if args.handler_only:
        ingest_handler.run(args, workload, prepare_db, isolated_schema)
        return
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
