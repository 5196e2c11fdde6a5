"""Throughput of the code sandbox: runs/s and per-run overhead for a trivial correct solution.

    python tools/bench_sandbox.py [--runs 50] [--workers 1] [--json]

Each run is one `run_python_tests(ADD, ADD_TESTS)`: everything a rollout's verifier pays per sample
(namespaces, mounts, interpreter start, the judge/candidate round trips). A first run is made and
not timed, so the one-off host check is not counted. With `--workers N`, N threads run
concurrently (the sandbox is a separate process, so threads suffice to load the cores).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from phijax.verify.sandbox import run_python_tests

ADD = "def add(a, b):\n    return a + b\n"
ADD_TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"


def timed_run() -> float:
    """Seconds for one sandboxed run of the trivial solution; raises if it does not pass."""
    started = time.perf_counter()
    result = run_python_tests(ADD, ADD_TESTS)
    seconds = time.perf_counter() - started
    if not result.passed:
        raise SystemExit(f"the trivial solution failed in the sandbox: {result.stderr.strip()[-300:]}")
    return seconds


def bench(runs: int, workers: int) -> dict[str, float]:
    """runs/s over `runs` runs on `workers` threads, and the median latency of one run in ms."""
    timed_run()  # warm-up: the cached host checks
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        latencies = list(pool.map(lambda _: timed_run(), range(runs)))
    wall = time.perf_counter() - started
    return {
        "runs": runs,
        "workers": workers,
        "runs_per_s": round(runs / wall, 1),
        "median_ms": round(1000 * statistics.median(latencies), 1),
        "p90_ms": round(1000 * sorted(latencies)[int(0.9 * (runs - 1))], 1),
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=50, help="timed runs (after one warm-up run)")
    parser.add_argument("--workers", type=int, default=1, help="concurrent runs")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of a sentence")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.workers < 1:
        parser.error("--runs and --workers must be >= 1")
    report = bench(args.runs, args.workers)
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"{report['runs_per_s']} runs/s with {args.workers} worker(s); one run: median "
            f"{report['median_ms']} ms, p90 {report['p90_ms']} ms"
        )
    return report


if __name__ == "__main__":
    main()
