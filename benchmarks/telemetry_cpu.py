"""CPU instructions a TelemetryBatch costs the gateway process, counted by valgrind.

    python -m benchmarks.telemetry_cpu [--messages 2000] [--rounds 3]

Wall-clock figures on a shared VM move ±20 % from one minute to the next (docs/sensors.md,
"Figures"); instructions do not: callgrind counts the same for the same code and input
whatever else the machine does. So the gateway's two costliest steps per reading are counted
here, each beside the floor it is built on, in the same run:

1. **prepare** — decode a 10-point TelemetryBatch (`gateway.telemetry.wire.decode_fast`) and
   run its node's profile and rules (`TelemetryPipeline.batch`), against the floor of
   decoding it alone;
2. **append** — the embedded store's `write_messages` of batches of 50 messages (binding the
   series ids, the points and the message ids, one transaction a batch), against the floor
   of the plain driver's `executemany` of the same rows, already bound, into tables with no
   index, one transaction a batch.

A round is a process under `valgrind --tool=callgrind`, which dumps its counts whenever the
process calls `getppid()`: after the set-up (imports, the messages, caches warm), then
after each stage, so each stage's dump holds that stage alone, no start-up in it. The
messages are the ones `benchmarks.telemetry_ingest` drains (charging monitors of 500 nodes,
10 points each), made once by this process. The figure is the median of the rounds; they
agree to within a few instructions, as counts of the same code on the same input do, so
nothing else the machine runs can fall on one stage more than another. Needs valgrind
(Debian's `valgrind`).
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.support.machine import loadavg
from benchmarks.support.result import emit, make

STAGES = ("decode", "prepare", "executemany", "append")
NODES = 500
POINTS = 10
BATCH = 50
"""Messages a batch: the two-process session's (`mqtt.batch_max` 100, two in flight)."""


def _mark() -> None:
    """Where callgrind dumps its counts (`--dump-before=getppid`)."""
    os.getppid()


def _child(data: Path, tmp: Path) -> None:
    """Every stage, run under callgrind: set up, mark, then each stage and a mark after it."""
    from gateway.telemetry.pipeline import SensorNode, TelemetryPipeline
    from gateway.telemetry.profiles import load_profiles
    from gateway.telemetry.sqlite_store import SqliteTelemetryStore
    from gateway.telemetry.wire import WireBatch, decode_fast

    messages: list[tuple[str, bytes]] = pickle.loads(data.read_bytes())
    profile = load_profiles()["charging_monitor"]
    nodes = {f"shed-{i}": SensorNode("bench", f"shed-{i}", profile) for i in range(NODES)}
    where = [(t.split("/")[2], t.split("/")[3], p) for t, p in messages]
    pipeline = TelemetryPipeline(nodes.get)
    decoded = [decode_fast(s, d, p) for s, d, p in where]
    assert all(isinstance(b, WireBatch) for b in decoded)
    outcomes = [pipeline.batch(b, 1.0, nodes[b.device_id]) for b in decoded if b is not None]
    items = [
        ((b.site_id, b.device_id, b.msg_id), o.points)
        for b, o in zip(decoded, outcomes, strict=True)
        if b is not None
    ]
    batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
    # Every series made and cached before the mark (a running gateway has them).
    fresh = SqliteTelemetryStore(tmp / "bench.telemetry.db")
    fresh.write_messages([(None, points) for _, points in items])
    with sqlite3.connect(tmp / "bench.telemetry.db") as made:
        sids = {(s, d, n): i for i, s, d, n in made.execute("SELECT * FROM series")}
    conn = sqlite3.connect(tmp / "plain.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE p (id INTEGER PRIMARY KEY, sid INTEGER, value REAL, ts REAL)")
    conn.execute("CREATE TABLE k (id INTEGER PRIMARY KEY, s TEXT, d TEXT, m TEXT, at REAL)")
    bound = [
        (
            [(sids[p[:3]], p[3], p[4]) for _, points in chunk for p in points],
            [(*key, 1.0) for key, _ in chunk],
        )
        for chunk in batches
    ]

    _mark()
    for site, device, payload in where:  # decode
        decode_fast(site, device, payload)
    _mark()
    for site, device, payload in where:  # prepare
        batch = decode_fast(site, device, payload)
        assert batch is not None
        pipeline.batch(batch, 2.0, nodes[device])
    _mark()
    for rows, keys in bound:  # executemany
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO p (sid, value, ts) VALUES (?, ?, ?)", rows)
        conn.executemany("INSERT INTO k (s, d, m, at) VALUES (?, ?, ?, ?)", keys)
        conn.execute("COMMIT")
    _mark()
    for chunk in batches:  # append
        fresh.write_messages(chunk, now=1.0)
    _mark()


def _count(data: Path, tmp: Path) -> dict[str, int]:
    """Instructions of each stage: between the child's marks."""
    out = tmp / "stages.callgrind"
    work = tmp / "files"
    work.mkdir()
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--dump-before=getppid",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "benchmarks.telemetry_cpu",
            "--child",
            str(data),
            str(work),
        ],
        check=True,
        capture_output=True,
    )
    # Dump k + 1 (`<out>.<k+1>`) holds what ran between mark k and mark k + 1; dump 1 is
    # the set-up, the file itself the exit.
    counts = {}
    for k, stage in enumerate(STAGES, start=2):
        text = Path(f"{out}.{k}").read_text()
        totals = [line for line in text.splitlines() if line.startswith("totals:")]
        counts[stage] = int(totals[0].split()[1])
    shutil.rmtree(work)
    return counts


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {text!r}")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=_positive, default=2000)
    parser.add_argument("--rounds", type=_positive, default=3)
    parser.add_argument("--smoke", action="store_true", help="Smallest run (not a figure).")
    parser.add_argument("--child", nargs=2, metavar=("DATA", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        data, work = args.child
        _child(Path(data), Path(work))
        return
    if shutil.which("valgrind") is None:
        sys.exit("error: valgrind: not found (Debian: apt-get install valgrind)")
    if args.smoke:
        args.messages, args.rounds = 100, 1
    from benchmarks.telemetry.workload import batches

    load0 = loadavg()
    n = args.messages
    counts: dict[str, list[float]] = {s: [] for s in STAGES}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / "messages.pickle"
        data.write_bytes(pickle.dumps(batches(n, POINTS, NODES, "cpu")))
        print(f"{n} TelemetryBatches of {POINTS} points from {NODES} nodes, {args.rounds} rounds")
        for r in range(args.rounds):
            round_dir = tmp / f"r{r}"
            round_dir.mkdir()
            for stage, count in _count(data, round_dir).items():
                counts[stage].append(count / n)
            print(f"round {r + 1}: " + " | ".join(f"{s} {counts[s][-1]:,.0f}" for s in STAGES))
    per = {s: statistics.median(v) for s, v in counts.items()}
    print("\nmedian instructions a message:")
    for stage in STAGES:
        spread = max(counts[stage]) - min(counts[stage])
        print(f"  {stage:<12} {per[stage]:>10,.0f}  (rounds spread {spread:,.0f})")
    for name, stage, floor, floor_name in (
        (
            "instructions to decode a 10-point TelemetryBatch and run its rules",
            "prepare",
            "decode",
            "decoding it alone (msgspec, decode_fast)",
        ),
        (
            "instructions to append a 10-point message to the embedded store",
            "append",
            "executemany",
            "the plain sqlite3 executemany of the same rows and message ids, already bound, "
            "into tables with no index, a transaction a batch",
        ),
    ):
        emit(
            make(
                benchmark="telemetry_cpu",
                name=name,
                figure=per[stage],
                unit="instructions/msg",
                limit=per[floor],
                limit_name=floor_name,
                better="lower",
                rounds=args.rounds,
                size=f"{n} batches x {POINTS} points from {NODES} nodes, {BATCH} a batch",
                loadavg_start=load0,
                notes="callgrind counts: the same whatever else the machine does",
            )
        )


if __name__ == "__main__":
    main()
