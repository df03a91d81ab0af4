"""Run the benchmarks and write BENCHMARKS.md from their results: one command, bounded time.

    python -m benchmarks.report                      # every benchmark at report size (~10 min)
    python -m benchmarks.report --only uplink_throughput,edge_streams   # a subset
    python -m benchmarks.report --size full          # each benchmark's own default size
    python -m benchmarks.report --size smoke --out /tmp/b.md            # seconds: plumbing only

Each benchmark runs as its own process (``python -m benchmarks.<name> <args>``), one after
the other, so none shares the CPU with another; its output streams to the console and its
``RESULT`` lines (format: `benchmarks.support.result`) become the table. With ``--only``,
the other benchmarks' rows are kept from the existing file (its results are embedded at the
end), each with the date and load it was measured at.

A benchmark plugs in by printing RESULT lines and accepting the size flags of its entry in
`BENCHMARKS` below (``--quick`` for the report size and ``--smoke`` for the smallest run, by
convention). One that fails, times out or prints no RESULT line gets a row saying so, and the
command exits non-zero after writing the file.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.support.machine import loadavg, machine, utc_now
from benchmarks.support.result import PREFIX, BenchResult, parse

REPO = Path(__file__).resolve().parent.parent
RESULTS_MARK = "<!-- results (one RESULT line each; read back by --only) -->"


@dataclass(frozen=True)
class Benchmark:
    """One benchmark module and its arguments at each size."""

    name: str
    report: tuple[str, ...] = ("--quick",)
    smoke: tuple[str, ...] = ("--smoke",)
    full: tuple[str, ...] = ()
    timeout_s: float = 300.0
    """Wall-clock bound of the report-size run; the process is killed past it."""

    def args(self, size: str) -> tuple[str, ...]:
        """The command-line arguments for `size` (report, smoke or full)."""
        return {"report": self.report, "smoke": self.smoke, "full": self.full}[size]


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("edge_streams", timeout_s=240),
    Benchmark("edge_pipeline_overhead", timeout_s=90),
    Benchmark("edge_motion_gate", timeout_s=300),
    Benchmark("edge_facade", timeout_s=90),
    Benchmark("uplink_throughput", timeout_s=120),
    Benchmark("gateway_rss", timeout_s=180),
    # 10,000 batches, not --quick's 3,000: a drain of under a second is a fraction of one
    # `telemetry.derive_interval_s`, and the store's move costs more a point the fewer
    # points of a series it moves at once (docs/sensors.md, "Stores").
    Benchmark("telemetry_ingest", report=("--events", "10", "--flood", "10000"), timeout_s=480),
    Benchmark("telemetry_cpu", report=(), timeout_s=600),  # 3 processes under valgrind
    Benchmark("residents_abuse", timeout_s=120),
    Benchmark("console_cards", timeout_s=120),
    # Owned with the gateway ingest path; they plug in by printing RESULT lines.
    Benchmark("gateway_ingest", timeout_s=240),
    Benchmark("gateway_latency", timeout_s=240),  # 3 rounds x 2 rates, a gateway each
)


@dataclass
class Outcome:
    """What one benchmark run produced."""

    benchmark: str
    results: list[BenchResult]
    error: str | None
    seconds: float


def run_one(
    bench: Benchmark,
    size: str,
    *,
    echo: bool = True,
    env: dict[str, str] | None = None,
    timeout_s: float | None = None,
) -> Outcome:
    """Run one benchmark in its own process (environment `env`, default this one's); its
    RESULT lines, or what went wrong. It is killed after `timeout_s` (default: its entry's
    bound, ten times that for the full size)."""
    command = [sys.executable, "-m", f"benchmarks.{bench.name}", *bench.args(size)]
    timeout = timeout_s or bench.timeout_s * (10 if size == "full" else 1)
    started = time.perf_counter()
    lines: list[str] = []
    print(f"== {bench.name}: {' '.join(command[1:])}", flush=True)
    # Its own process group, so what it starts (brokers, gateways, VictoriaMetrics) can be
    # stopped with it.
    process = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    assert process.stdout is not None
    # A silent, hung benchmark must not hang the report: the watchdog stops it at the bound.
    watchdog = threading.Timer(timeout, _stop, args=(process,))
    watchdog.start()
    error: str | None = None
    try:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if echo and not line.startswith(PREFIX):
                print(f"   {line}", end="", flush=True)
        code = process.wait()
    finally:
        watchdog.cancel()
        _stop(process)
        process.stdout.close()
    if time.perf_counter() - started >= timeout:
        error = f"timed out after {timeout:.0f} s"
    elif code != 0:
        tail = " | ".join(x for x in lines[-3:] if x.strip())
        error = f"exit code {code}: {tail[-300:]}"
    try:
        results = parse(lines)
    except ValueError as exc:  # malformed RESULT line: a bug in that benchmark
        results, error = [], f"malformed RESULT line: {exc}"
    if error is None and not results:
        error = "printed no RESULT line"
    return Outcome(bench.name, results, error, time.perf_counter() - started)


def _stop(process: subprocess.Popen[str]) -> None:
    """Stop a benchmark and everything it started.

    SIGINT first, so its `finally` blocks stop its brokers and remove its temporary files;
    whatever is left of its process group ten seconds later is killed.
    """
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _cell(text: str) -> str:
    """`text` safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _row(r: BenchResult) -> str:
    limit = f"{_fmt(r.limit)} {r.unit}" if r.limit is not None else "—"
    kind = "" if r.limit_kind == "measured" else " (budget)"
    cpu = _fmt(r.cpu_us_per_item)
    if r.limit_cpu_us_per_item is not None:
        cpu += f" / {_fmt(r.limit_cpu_us_per_item)}"
    load = f"{r.loadavg_start[0]:.2f} → {r.loadavg_end[0]:.2f}"
    return (
        f"| {r.benchmark} | {r.name} | {_fmt(r.figure)} {r.unit} | {limit}: {r.limit_name}{kind}"
        f" | **{_fmt(r.ratio)}** | {r.target or ''} | {cpu} | {r.rounds} | {load}"
        f" | {r.date} |"
    )


def render(
    results: list[BenchResult],
    failures: dict[str, str],
    *,
    command: str,
    load_start: tuple[float, float, float],
) -> str:
    """BENCHMARKS.md: the table, the notes, the machine, and the results for re-reading."""
    here = machine()
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{command}` (see `benchmarks/README.md`); do not edit by hand.",
        "",
        f"- Machine: {here.describe()}.",
        f"- Written {utc_now()}; load average (1/5/15 min) when the run started:"
        f" {' / '.join(f'{x:.2f}' for x in load_start)}, at the end:"
        f" {' / '.join(f'{x:.2f}' for x in loadavg())}.",
        "- Ratio: figure ÷ limit when higher is better, limit ÷ figure when lower is better;"
        " 1.0 = at the limit. Each limit is measured in the same run unless marked (budget).",
        "- Figures are medians of interleaved rounds; CPU µs are per message/frame of the"
        " measured path / of the limit's path. A busy machine (load above its core count)"
        " makes every rate lower and noisier: compare the load column.",
        "",
        "| benchmark | figure | value | limit | ratio | target | CPU µs/item | rounds"
        " | load (1 min) start → end | measured |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(r) for r in results]
    lines += [
        f"| {name} | FAILED: {_cell(why)} | | | | | | | | |" for name, why in failures.items()
    ]
    lines += ["", "## Sizes and notes", ""]
    for r in results:
        note = f"; {r.notes}" if r.notes else ""
        lines.append(f"- **{r.benchmark}** — {r.name}: {r.size}{note}.")
    lines += ["", RESULTS_MARK, "<!--"]
    lines += [PREFIX + r.model_dump_json() for r in results]
    lines += ["-->", ""]
    return "\n".join(lines)


def previous(path: Path) -> list[BenchResult]:
    """The results embedded in an earlier report (none if there is no file)."""
    if not path.exists():
        return []
    text = path.read_text()
    if RESULTS_MARK not in text:
        return []
    return parse(text.split(RESULTS_MARK, 1)[1].splitlines())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    names = [b.name for b in BENCHMARKS]
    parser.add_argument("--only", default="", help=f"Comma-separated subset of: {names}.")
    parser.add_argument("--size", choices=["report", "smoke", "full"], default="report")
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    wanted = [n.strip() for n in args.only.split(",") if n.strip()] or names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        print(f"error: --only: {', '.join(unknown)}: allowed are {', '.join(names)}")
        return 2
    load_start = loadavg()
    outcomes = [run_one(b, args.size) for b in BENCHMARKS if b.name in wanted]
    kept = [r for r in previous(args.out) if r.benchmark not in wanted]
    fresh = [r for o in outcomes for r in o.results]
    order = {name: i for i, name in enumerate(names)}
    results = sorted(kept + fresh, key=lambda r: order.get(r.benchmark, len(order)))
    failures = {o.benchmark: o.error for o in outcomes if o.error is not None}
    command = "python -m benchmarks.report" + (f" --only {args.only}" if args.only else "")
    if args.size != "report":
        command += f" --size {args.size}"
    args.out.write_text(
        render(results, failures, command=command, load_start=load_start), encoding="utf-8"
    )
    for o in outcomes:
        status = "ok" if o.error is None else f"FAILED ({o.error})"
        print(f"{o.benchmark:<24} {o.seconds:6.0f} s  {len(o.results)} results  {status}")
    print(f"wrote {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
