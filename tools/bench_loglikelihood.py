"""Benchmark batched log-likelihoods: requests/s of packed rows against one request per forward pass.

    python tools/bench_loglikelihood.py [--preset phi4-100m] [--requests 500] [--choices 4]
                                        [--rows-per-pass 16] [--repeats 1] [--json runs/bench_loglikelihood.json]
                                        [KEY=VALUE ...]

The workload is multiple choice as lm-evaluation-harness sends it: `--requests` (context, continuation)
pairs, `--choices` per question sharing one context of 32-96 random tokens, each continuation 1-8
tokens. The model is the preset with random weights (`model.*` KEY=VALUE overrides apply), float32, on
jax's default backend. Two cases, timed in one run on the same requests after a warm-up run each
(compilation): `packed` (`phijax.inference.loglikelihood.score`: many requests per row, segment ids,
`--rows-per-pass` rows per pass) and `one per pass` (`score(..., packed=False)`). `max_diff` is the
largest difference between the two cases' sums (nats): packing must not change the scores.
Prints a table and writes the numbers and the machine as JSON (`--json`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from phijax.config import parse_override
from phijax.errors import ConfigError, PhijaxError
from phijax.inference.cache import bucket_length
from phijax.inference.loglikelihood import score
from phijax.model.config import ModelConfig
from phijax.model.phi4 import Phi4
from phijax.train.config import load_train_job


def model_config(preset: str, overrides: Sequence[str]) -> ModelConfig:
    """The preset's float32 model config with the `model.*` overrides (ConfigError for other keys)."""
    for text in overrides:
        key, _ = parse_override(text)
        if not key.startswith("model."):
            raise ConfigError(f"override {text!r}: only model.* keys apply to this benchmark, e.g. model.num_layers=4")
    return load_train_job(overrides=[f"model.preset={preset}", *overrides]).model


def jit_init(cfg: ModelConfig) -> Phi4:
    """A randomly initialised model, built inside jit on jax's default device."""
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: Phi4(cfg, rngs=nnx.Rngs(0))))
    return nnx.merge(graphdef, jax.jit(lambda: nnx.split(Phi4(cfg, rngs=nnx.Rngs(0)))[1])())


def multiple_choice(count: int, choices: int, vocab: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """`count` requests: questions of `choices` continuations (1-8 tokens) of one context (32-96 tokens)."""
    rng = np.random.RandomState(seed)
    requests: list[tuple[list[int], list[int]]] = []
    while len(requests) < count:
        context = rng.randint(3, vocab, rng.randint(32, 97)).tolist()
        for _ in range(min(choices, count - len(requests))):
            requests.append((context, rng.randint(3, vocab, rng.randint(1, 9)).tolist()))
    return requests


def bench(model: Phi4, requests: list, rows_per_pass: int, repeats: int) -> list[dict[str, Any]]:
    """One row per case: best seconds of `repeats` after a warm-up, requests/s, max difference of sums."""
    cases = {"packed": {"packed": True, "rows_per_pass": rows_per_pass}, "one per pass": {"packed": False}}
    for name, kwargs in cases.items():  # warm-up: compile every program shape the timed run will use
        score(model, warmup_requests(requests, kwargs["packed"], rows_per_pass), **kwargs)
    results: dict[str, list] = {}
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(repeats):
        for name, kwargs in cases.items():
            start = time.perf_counter()
            results[name] = score(model, requests, **kwargs)
            best[name] = min(best[name], time.perf_counter() - start)
    diff = float(
        np.max(np.abs(np.subtract([s for s, _ in results["packed"]], [s for s, _ in results["one per pass"]])))
    )
    return [
        {
            "case": name,
            "requests": len(requests),
            "seconds": best[name],
            "requests_per_s": len(requests) / best[name],
            "speedup": best["one per pass"] / best[name],
            "max_diff": diff,
        }
        for name in cases
    ]


def warmup_requests(requests: list, packed: bool, rows_per_pass: int) -> list:
    """Requests that compile the programs of the whole set: one request per length bucket unpacked;
    packed, the whole set (its packing, shared prefixes and entries per row set the program shapes)."""
    if packed:
        return requests
    by_bucket = {bucket_length(len(c) + len(x) - 1): (c, x) for c, x in requests}
    return list(by_bucket.values())


def machine(cfg: ModelConfig, overrides: Sequence[str]) -> dict[str, Any]:
    return {
        "jax_backend": jax.default_backend(),
        "jax_device_kind": jax.devices()[0].device_kind,
        "jax_devices": jax.device_count(),
        "preset": cfg.preset,
        "num_layers": cfg.num_layers,
        "vocab_size": cfg.vocab_size,
        "overrides": list(overrides),
        "cpu": platform.processor(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'case':<13} {'requests':>8} {'seconds':>8} {'requests/s':>11} {'speedup':>8} {'max_diff':>9}")
    for r in rows:
        print(
            f"{r['case']:<13} {r['requests']:>8} {r['seconds']:>8.2f} {r['requests_per_s']:>11.1f} "
            f"{r['speedup']:>7.2f}x {r['max_diff']:>9.2e}"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="phi4-100m")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--choices", type=int, default=4, help="continuations per question (shared context)")
    parser.add_argument("--rows-per-pass", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", default="runs/bench_loglikelihood.json", help="where to write the results")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="model config overrides")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.requests < 1 or args.choices < 1 or args.repeats < 1:
            raise PhijaxError("--requests, --choices and --repeats must be at least 1")
        cfg = model_config(args.preset, args.overrides)
        requests = multiple_choice(args.requests, args.choices, cfg.vocab_size)
        rows = bench(jit_init(cfg), requests, args.rows_per_pass, args.repeats)
    except PhijaxError as err:
        print(f"bench_loglikelihood: {err}", file=sys.stderr)
        return 2
    print_table(rows)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(cfg, args.overrides), "results": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
