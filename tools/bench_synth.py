"""Throughput of `phijax synth`: requests/s over HTTP against a fake server, records/s on a local model.

    python tools/bench_synth.py [--seeds 160] [--latency 0.2] [--concurrency 16] [--checkpoint runs/tiny-pretrain
        --tokenizer configs/tiny/tokenizer.json] [--json PATH]

HTTP: a `rewrite` stage (2 requests per seed: plan, write) through the whole runner and the `openai`
backend, against the loopback fake server answering each request after `--latency` seconds; the ideal is
concurrency / latency requests/s (16 / 0.2 s = 80), reached only when the seeds fill every wave (a multiple
of the concurrency). Local: the same stage over a local checkpoint, whose
requests the runner batches into the KV-cache sampler; records/s. A fresh cache each time: nothing is free.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from phijax.config.loader import load_job
from phijax.synth.config import SynthJob
from phijax.synth.run import run_synth


def _job(work: Path, seeds: int, policy: dict, concurrency: int, max_new_tokens: int, cpu: bool) -> SynthJob:
    seed_file = work / "seeds.jsonl"
    seed_file.write_text(
        "".join(json.dumps({"id": f"s{i}", "text": f"Seed passage number {i}."}) + "\n" for i in range(seeds))
    )
    stage = {
        "generator": "rewrite",
        "input": str(seed_file),
        "output": str(work / "out"),
        "forms": ["exercise"],
        "max_new_tokens": max_new_tokens,
    }
    overrides = [
        f"policy={json.dumps(policy)}",
        f"synth.stages={json.dumps([stage])}",
        f"synth.cache_dir={work / 'cache'}",
        f"synth.concurrency={concurrency}",
        "synth.progress=false",
    ]
    if cpu:
        overrides.append("mesh={data: 1, fsdp: -1, tensor: 1, cpu_devices: 1}")
    return load_job(SynthJob, [], overrides)


_SERVE = """
import sys, time
from phijax.synth.testing import FakeServer
server = FakeServer(latency_s=float(sys.argv[1])).start()
print(server.base_url, flush=True)
time.sleep(3600)
"""


def bench_http(seeds: int, latency: float, concurrency: int) -> dict:
    """The server runs in its own process, as a real one would: its threads do not share our GIL."""
    server = subprocess.Popen([sys.executable, "-c", _SERVE, str(latency)], stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip()
        policy = {"backend": "openai", "base_url": base_url, "model": "fake-model", "concurrency": concurrency}
        with tempfile.TemporaryDirectory() as tmp:
            [summary] = run_synth(_job(Path(tmp), seeds, policy, concurrency, 64, cpu=False))
    finally:
        server.kill()
        server.wait()
    ideal = concurrency / latency
    rate = summary.requests / summary.wall_s
    return {
        "case": f"http c={concurrency} latency={latency * 1000:.0f}ms",
        "requests": summary.requests,
        "wall_s": round(summary.wall_s, 2),
        "requests_per_s": round(rate, 1),
        "ideal_per_s": ideal,
        "efficiency": round(rate / ideal, 3),
        "records_per_s": round(summary.records_out / summary.wall_s, 2),
    }


def bench_local(seeds: int, checkpoint: str, tokenizer: str | None, concurrency: int, max_new_tokens: int) -> dict:
    policy = {"backend": "local", "checkpoint": checkpoint, **({"tokenizer": tokenizer} if tokenizer else {})}
    with tempfile.TemporaryDirectory() as tmp:
        [summary] = run_synth(_job(Path(tmp), seeds, policy, concurrency, max_new_tokens, cpu=True))
    return {
        "case": f"local {checkpoint} c={concurrency}",
        "requests": summary.requests,
        "wall_s": round(summary.wall_s, 2),
        "requests_per_s": round(summary.requests / summary.wall_s, 2),
        "records_per_s": round(summary.records_out / summary.wall_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=160, help="a multiple of --concurrency: no half-empty last wave")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--checkpoint", help="a local model for the records/s row (e.g. a tiny run dir)")
    parser.add_argument("--tokenizer")
    parser.add_argument("--local-seeds", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    rows = [bench_http(args.seeds, args.latency, args.concurrency)]
    if args.checkpoint:
        rows.append(
            bench_local(args.local_seeds, args.checkpoint, args.tokenizer, args.concurrency, args.max_new_tokens)
        )
    keys = ["case", "requests", "wall_s", "requests_per_s", "ideal_per_s", "efficiency", "records_per_s"]
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join(str(row.get(k, "")) for k in keys))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
