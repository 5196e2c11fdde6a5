"""Benchmark of decontamination (`phijax.data.decontam`) on generated text.

Measures (1) the time to build the benchmark index from `--items` generated items, and (2) the
throughput (MB/s of training JSONL) of `phijax data decontam`'s engine over `--mb` MB of generated
training files with 1 and with 2 worker processes (the same files, the same index), and MB per
CPU-second (which other load on the machine does not skew). Prints a table; `--json PATH` also writes
the numbers.

    python tools/bench_decontam.py --mb 200 --items 100000 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from phijax.data.decontam import BenchmarkItem, DecontamConfig, Decontaminator
from phijax.data.decontam.run import decontaminate_files, input_files


def vocabulary(size: int, seed: int) -> list[str]:
    """Zipf-ish word list: random lower-case words of 1..12 letters, some capitalised or with commas."""
    rng = random.Random(seed)
    return ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(1, 12))) for _ in range(size)]


def sentence(rng: random.Random, vocab: list[str], words: int) -> str:
    chosen = rng.choices(vocab, k=words, cum_weights=None)
    return " ".join(chosen).capitalize() + rng.choice([".", "?", "!", ";"])


def make_items(count: int, vocab: list[str], seed: int) -> list[BenchmarkItem]:
    """`count` items of 8..120 words (a mix of short ones, only caught by the 7-gram ratio)."""
    rng = random.Random(seed)
    return [BenchmarkItem(f"bench{i % 20}", str(i), sentence(rng, vocab, rng.randint(8, 120))) for i in range(count)]


def write_corpus(directory: Path, megabytes: float, files: int, vocab: list[str], seed: int) -> list[Path]:
    """JSONL files `{"text": ...}` of about `megabytes` MB in all; documents of 50..1500 words."""
    rng = random.Random(seed)
    paths, target = [], megabytes * 1e6 / files
    for f in range(files):
        path = directory / f"train-{f:03d}.jsonl"
        size = 0
        with open(path, "w") as out:
            while size < target:
                text = " ".join(sentence(rng, vocab, rng.randint(5, 30)) for _ in range(rng.randint(3, 60)))
                line = json.dumps({"text": text}) + "\n"
                out.write(line)
                size += len(line)
        paths.append(path)
    return paths


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the worker processes)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=200.0, help="MB of generated training text")
    parser.add_argument("--items", type=int, default=100_000, help="generated benchmark items")
    parser.add_argument("--files", type=int, default=8, help="training files")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="process counts to compare")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    vocab = vocabulary(200_000, 0)
    items = make_items(args.items, vocab, 1)
    start = time.perf_counter()
    decontaminator = Decontaminator(DecontamConfig(), items=items)
    build = time.perf_counter() - start
    results = {"items": args.items, "index_build_s": round(build, 3), "index": decontaminator.index.stats, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        files = input_files([str(p) for p in write_corpus(Path(tmp), args.mb, args.files, vocab, 2)])
        for processes in args.processes:
            cpu = _cpu_seconds()
            report = decontaminate_files(decontaminator, files, Path(tmp) / f"out{processes}", processes=processes)
            cpu = _cpu_seconds() - cpu
            results["runs"].append(
                {
                    "processes": processes,
                    "mb": round(report["bytes"] / 1e6, 2),
                    "seconds": report["seconds"],
                    "mb_per_s": report["mb_per_s"],
                    "cpu_seconds": round(cpu, 3),
                    "mb_per_cpu_s": round(report["bytes"] / 1e6 / cpu, 3),
                }
            )
    results["load_average"] = os.getloadavg()
    print(f"index: {args.items:,} items in {build:.2f} s")
    print(f"load average {results['load_average'][0]:.2f} on {os.cpu_count()} cores (other work skews MB/s)")
    print(f"{'processes':>10}{'MB':>10}{'seconds':>10}{'MB/s':>10}{'MB/cpu-s':>10}")
    for run in results["runs"]:
        print(
            f"{run['processes']:>10}{run['mb']:>10,.1f}{run['seconds']:>10.2f}{run['mb_per_s']:>10.1f}"
            f"{run['mb_per_cpu_s']:>10.1f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
