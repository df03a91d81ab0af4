"""Telemetry messages and points per second, ingested and stored, ÷ a bare subscriber.

    python -m benchmarks.telemetry_ingest [--messages 10000] [--points 10] [--nodes 500]
                                          [--rounds 3] [--events 30] [--flood 30000]

Starts its own Mosquitto and VictoriaMetrics (Debian's `victoria-metrics`). Each round runs
five consumers in turn (interleaved, so the machine's other load falls on all alike); each
drains `--messages` TelemetryBatches of `--points` readings (charging monitors, a node
every 10 s, in range: no tickets) from `--nodes` registered nodes, parked in its persistent
session while it was away (`benchmarks/telemetry/workload.py`; the consumers are in
`benchmarks/telemetry/drains.py`):

1. the limit: a bare aiomqtt client (QoS 1, persistent session) that only counts messages,
   on the MQTT version the gateway's telemetry session speaks (`mqtt.telemetry_protocol`,
   3.1.1 by default: paho reads an MQTT 5 PUBLISH at ~3× the CPU, a properties object per
   message, so an MQTT 5 drain would flatter every ratio); beside it, for reference, the
   other version, and the gateway's MQTT edge (`MqttIngest`, manual acks) publishing the
   end-to-end Acks and doing nothing else — what the contract's delivery guarantee costs
   before any reading is read;
2. the gateway's telemetry session with the embedded store: `MqttIngest` →
   `gateway.ingest_loop.ingest_batch` → `gateway.readings` (decode, rules, one transaction of
   msg-id claims per batch, points appended after the commit, end-to-end Acks), timed until
   every message is committed and acknowledged and every point moved into the store's series
   index (the store's `derive` at the gateway's cadence, and once more at the end, on the
   clock, with a WAL checkpoint). Each store starts as a copy of one with `--history-s` of
   every node's readings (an hour: a store in use, where a point costs more to index than in
   a new file). The nodes' profiles are looked up before the clock starts (in steady state
   each is cached for 30 s);
3. the same with the InfluxDB v2 writer on (VictoriaMetrics), timed the same way: until
   every message is stored and acknowledged. The writer sends on its own thread in batches
   of 5,000 points or every `FLUSH_S` (+ jitter), so the last partial batch of a drain
   waits up to that long: how long after the last acknowledgement VictoriaMetrics had
   accepted every point is printed apart (delivery latency, bounded by the flush interval;
   it used to be in the rate, which then swung 2.5× by where the interval's timer fell).
   The CPU is counted until VictoriaMetrics has every point (the writer thread's work is
   in the µs/msg).

4. rows 2 and 3 again with `mqtt.telemetry_processes = 2`: the session's MQTT edge in a
   receiver process (`gateway.receiver_ingest`), the batches applied in this process; the
   CPU is both processes', printed apart too.

Every drain is timed from its first batch to its last message (connecting, and starting a
receiver process, stay off the clock, alike for every row), and the broker's CPU a message
is printed apart (it is not the consumer's). The broker runs with the shipped config's
window of 100 unacknowledged QoS 1 messages per client (`SHIPPED_INFLIGHT`).

Prints, per round and as medians: messages/s and points/s, the ratio to the bare drain of
the same round, and the gateway's CPU µs per message (this process, all threads: the
broker and VictoriaMetrics are other processes) and the garbage collector's share of it.
After each drain, off the clock, the devices' Ack session (parked during the drain) must
hold an Ack for every message, and no Ack publish may have failed. Then the event → ticket
latency (publish to commit), with the gateway running both sessions as `gateway.main` does:
alone, and during a flood of `--flood` readings published by another process
(`benchmarks/telemetry/latency.py`). And the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
from pathlib import Path

from benchmarks.support.machine import loadavg
from benchmarks.support.publish import publish_all
from benchmarks.support.result import emit, make
from benchmarks.telemetry.drains import (
    FLUSH_S,
    JITTER_S,
    bare,
    close_runtime,
    edge_only,
    gateway,
    make_runtime,
)
from benchmarks.telemetry.latency import latency_report, median
from benchmarks.telemetry.workload import batches
from benchmarks.telemetry.workload import history as history_store
from gateway.mqtt_settings import MqttSettings
from tests.support.broker import MosquittoBroker
from tests.support.victoria import VictoriaMetrics

SHIPPED_INFLIGHT = 100
"""`max_inflight_messages` as docker/mosquitto/mosquitto.conf sets it."""

PROTOCOL = MqttSettings.model_fields["telemetry_protocol"].default
"""What the gateway's telemetry session speaks (the benchmark's gateways keep the default)."""
LIMIT = "bare311" if PROTOCOL == "3.1.1" else "bare"
"""The drain each ratio divides by: the bare drain on the telemetry session's protocol."""

Rounds = dict[str, list[dict[str, float]]]
"""Per consumer, one row per round: seconds, CPU µs/msg, ratio to that round's bare drain."""


async def _round(
    r: int,
    tmp: Path,
    broker: MosquittoBroker,
    vm: VictoriaMetrics,
    args: argparse.Namespace,
    *,
    history: Path | None,
) -> dict[str, dict[str, float]]:
    """One round: every consumer in turn on a backlog of its own (the same messages)."""
    n, p, nodes = args.messages, args.points, args.nodes
    out: dict[str, dict[str, float]] = {}
    for key, v311 in (("bare", False), ("bare311", True)):
        drained = await bare(broker, batches(n, p, nodes, f"{key}{r}"), f"{key}{r}", v311=v311)
        out[key] = dict(zip(("s", "cpu_us", "broker_us"), drained, strict=True))
    runtime = make_runtime(tmp, broker, f"edge{r}", 0, None)
    seconds, cpu, broker_us = await edge_only(runtime, broker, batches(n, p, nodes, f"edge{r}"))
    out["edge"] = {"s": seconds, "cpu_us": cpu, "broker_us": broker_us}
    close_runtime(runtime)
    for key, influx, processes in GATEWAYS:
        name = f"gw-{key}{r}"
        server = vm if influx else None
        runtime = make_runtime(
            tmp, broker, name, nodes, server, processes=processes, history=history
        )
        got = await gateway(runtime, broker, batches(n, p, nodes, name), p, nodes)
        out[key] = {
            "s": got["stored_s"],
            "cpu_us": got["cpu_us"],
            "broker_us": got["broker_us"],
            "gc_us": got["gc_us"],
            "gateway_us": got["gateway_us"],
            "receiver_us": got["receiver_us"],
            "dropped": got["dropped"],
            "lag_s": got["delivered_s"] - got["stored_s"],
        }
        close_runtime(runtime)
    for row in out.values():
        row["ratio"] = out[LIMIT]["s"] / row["s"]
        row["ratio5"] = out["bare"]["s"] / row["s"]
    print(
        f"round {r + 1}: "
        + " | ".join(f"{k} {n / v['s']:6,.0f} msg/s {v['cpu_us']:.0f} µs" for k, v in out.items())
        + f" (all in VictoriaMetrics +{out['influx']['lag_s']:.2f} / "
        f"+{out['influx2']['lag_s']:.2f} s)",
        flush=True,
    )
    return out


GATEWAYS = (("sqlite", False, 1), ("influx", True, 1), ("sqlite2", False, 2), ("influx2", True, 2))
"""The gateway's rows: key, InfluxDB writer on, `mqtt.telemetry_processes`."""

LABELS = {
    "bare": "bare aiomqtt QoS 1 drain, MQTT 5" + (" (the limit)" if LIMIT == "bare" else ""),
    "bare311": "bare aiomqtt QoS 1 drain, MQTT 3.1.1"
    + (" (the limit)" if LIMIT == "bare311" else ""),
    "edge": "MQTT edge + Acks, no work",
    "sqlite": "1 process: embedded store",
    "influx": "1 process: embedded + InfluxDB",
    "sqlite2": "2 processes: embedded store",
    "influx2": "2 processes: embedded + InfluxDB",
}


def _summary(rounds: Rounds, args: argparse.Namespace, load0: tuple[float, float, float]) -> None:
    n, p = args.messages, args.points
    print(
        f"\nmedian of {args.rounds} rounds; ratios against the bare drain on MQTT {PROTOCOL} of "
        "each round (what the telemetry session speaks), and against the MQTT 5 drain:"
    )
    rate = {k: median([n / row["s"] for row in rows]) for k, rows in rounds.items()}
    cpu = {k: median([row["cpu_us"] for row in rows]) for k, rows in rounds.items()}
    for key, rows in rounds.items():
        gc_us = f"  (GC {median([row['gc_us'] for row in rows]):.0f})" if "gc_us" in rows[0] else ""
        if rows[0].get("receiver_us"):
            gc_us += (
                f"  (gateway process {median([row['gateway_us'] for row in rows]):.0f}, receiver "
                f"{median([row['receiver_us'] for row in rows]):.0f})"
            )
        print(
            f"{LABELS[key]:<46} {rate[key]:7,.0f} msg/s {rate[key] * p:9,.0f} points/s  "
            f"ratio {median([row['ratio'] for row in rows]):.2f} "
            f"(MQTT 5: {median([row['ratio5'] for row in rows]):.2f})  "
            f"{cpu[key]:.0f} µs CPU/msg (broker "
            f"{median([row['broker_us'] for row in rows]):.0f}){gc_us}"
        )
    lags = [row["lag_s"] for key in ("influx", "influx2") for row in rounds[key]]
    print(
        f"InfluxDB: every point accepted by VictoriaMetrics {median(lags):.2f} s (max "
        f"{max(lags):.2f} s) after the last message was stored and acknowledged: the last "
        f"batch waits for the flush interval ({FLUSH_S:g} s + ≤ {JITTER_S:g} s jitter) — "
        "delivery latency, not ingest time (the rates above end at the acknowledgement)"
    )
    for key in ("sqlite", "influx", "sqlite2", "influx2"):
        emit(
            make(
                benchmark="telemetry_ingest",
                name=f"telemetry batches stored/s, {LABELS[key]}",
                figure=rate[key],
                unit="msg/s",
                limit=rate[LIMIT],
                limit_name=(
                    f"bare aiomqtt QoS 1 drain (MQTT {PROTOCOL}, as the telemetry session) of "
                    "the same parked backlog"
                ),
                target="ratio >= 0.5, >= 5,000 msg/s",
                cpu_us_per_item=cpu[key],
                limit_cpu_us_per_item=cpu[LIMIT],
                rounds=args.rounds,
                size=f"{n} batches x {p} points from {args.nodes} nodes",
                loadavg_start=load0,
                notes=(
                    f"{rate[key] * p:,.0f} points/s; bare MQTT 5 drain {rate['bare']:,.0f} "
                    f"msg/s (ratio {median([r['ratio5'] for r in rounds[key]]):.2f}); MQTT edge "
                    f"+ Acks alone {rate['edge']:,.0f} msg/s; GC "
                    f"{median([r['gc_us'] for r in rounds[key]]):.0f} µs/msg; InfluxDB points "
                    f"dropped {max(row.get('dropped', 0.0) for row in rounds[key]):.0f}"
                    + (
                        f"; all points in VictoriaMetrics {median(lags):.2f} s (max "
                        f"{max(lags):.2f} s) after the last acknowledgement (flush interval)"
                        if key in ("influx", "influx2")
                        else ""
                    )
                ),
            )
        )


async def main_async(args: argparse.Namespace) -> None:
    load0 = loadavg()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # The shipped config's window (docker/mosquitto/mosquitto.conf): with Mosquitto's
        # default 20, one batch fills it and two-batch overlap (telemetry_processes 2) stalls.
        broker = MosquittoBroker(tmp / "broker", max_inflight=SHIPPED_INFLIGHT)
        broker.start()
        vm = VictoriaMetrics(tmp / "vm")
        vm.start()
        try:
            print(
                f"{args.messages} TelemetryBatches of {args.points} points from {args.nodes} "
                f"nodes, {args.rounds} rounds"
            )
            history = None
            if args.history_s > 0:
                history = tmp / "history.db"
                rows = history_store(history, args.history_s, args.points, args.nodes)
                print(f"each gateway's store starts with {rows:,} points of history", flush=True)
            rounds: Rounds = {}
            for r in range(args.rounds):
                for key, row in (await _round(r, tmp, broker, vm, args, history=history)).items():
                    rounds.setdefault(key, []).append(row)
            _summary(rounds, args, load0)
            if args.events:
                await latency_report(tmp, broker, vm, args)
            print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        finally:
            vm.stop()
            broker.stop()


def _flood(target: str, args: argparse.Namespace) -> None:
    host, port = target.rsplit(":", 1)
    publish_all(host, int(port), batches(args.messages, args.points, args.nodes, "flood"), "flood")


def main(argv: list[str] | None = None) -> None:
    # aiomqtt warns for every publish past 1,000 in flight: the Acks of a drain do that.
    logging.getLogger("mqtt").setLevel(logging.ERROR)  # aiomqtt's logger
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=30, help="event latency samples (0: skip)")
    parser.add_argument("--flood", type=int, default=30_000, help="readings in the flood")
    parser.add_argument(
        "--history-s",
        type=float,
        default=3600.0,
        help="readings already in each gateway's store, in seconds of every node (0: a new file)",
    )
    parser.add_argument("--publish-flood", metavar="HOST:PORT", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="3,000 batches, 10 latency samples.")
    parser.add_argument("--smoke", action="store_true", help="Smallest run (not a figure).")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.events, args.flood = 3000, 10, 10_000
    if args.smoke:
        args.messages, args.nodes, args.events, args.rounds = 100, 20, 0, 1
        args.history_s = min(args.history_s, 60.0)
    if args.publish_flood:
        _flood(args.publish_flood, args)
        return
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
