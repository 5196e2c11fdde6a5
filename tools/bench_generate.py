"""Benchmark rollout throughput (generated tokens/s) of phijax's sampler against HF `generate`.

    python tools/bench_generate.py [--presets tiny phi4-100m] [--batch 8] [--prompt-len 64]
                                   [--new-tokens 64] [--repeats 3] [--json runs/bench_generate.json]

For each preset: a randomly initialised model, written with `save_hf` and loaded as transformers'
`Phi3ForCausalLM` (CPU torch, fp32), so both sides hold the same weights. Every case generates
`--new-tokens` tokens greedily (no stop tokens) for `--batch` rows of `--prompt-len` random prompt
tokens:

- `phijax batch`:  `generate` on `batch` distinct prompts (prefill of every row, then decode);
- `phijax shared`: `sample_continuations` of one prompt, prefilled once and copied to `batch` rows
  (the PTS workload);
- `hf batch Nt`:   `model.generate(..., do_sample=False, use_cache=True)` on the same prompts, torch
  on N threads (1 and torch's default); `vs HF` compares with the faster of the two.

Each case runs once to warm up (jit compilation, torch allocations), then `--repeats` times timed,
the cases taking turns; the best time is reported. `agree` is the share of rows on which phijax's
greedy tokens equal HF's. Prints a table and writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
import torch
from flax import nnx
from transformers import Phi3ForCausalLM

from phijax.generate import Sampling, generate, sample_continuations
from phijax.model.hf import save_hf
from phijax.model.phi4 import Phi4
from phijax.model.presets import preset_config

GREEDY = Sampling(temperature=0.0)
# torch's default thread count; HF is also timed on 1 thread, which wins on a busy shared machine
# (torch's spinning OpenMP threads suffer most from oversubscription). vs_hf uses the faster.
TORCH_THREADS = torch.get_num_threads()


def jit_init(preset: str) -> Phi4:
    """A randomly initialised model of a preset, built inside jit (fast even at 100M parameters)."""
    cfg = preset_config(preset)
    build = lambda: Phi4(cfg, rngs=nnx.Rngs(0))
    graphdef, _ = nnx.split(nnx.eval_shape(build))
    return nnx.merge(graphdef, jax.jit(lambda: nnx.split(build())[1])())


def best_times(cases: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[float, Any]]:
    """Per case: (fastest of `repeats` timed runs, its result), after one warm-up run each.

    The cases take turns within each repeat, so a burst of load from other processes on a shared
    machine hits them alike rather than one case's whole series.
    """
    results = {name: run() for name, run in cases.items()}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, run in cases.items():
            start = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - start)
    return {name: (min(times[name]), results[name]) for name in cases}


def bench_preset(preset: str, batch: int, prompt_len: int, new_tokens: int, repeats: int) -> list[dict[str, Any]]:
    model = jit_init(preset)
    vocab = model.cfg.vocab_size
    prompts = np.random.RandomState(0).randint(3, vocab, (batch, prompt_len))
    with tempfile.TemporaryDirectory() as hf_dir:
        save_hf(model, hf_dir)
        hf_model = Phi3ForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()

    def phijax_batch():
        return generate(model, prompts.tolist(), max_new_tokens=new_tokens, sampling=GREEDY, stop_tokens=()).tokens

    def phijax_shared():
        return sample_continuations(model, prompts[0].tolist(), batch, max_new_tokens=new_tokens,
                                    sampling=GREEDY, stop_tokens=()).tokens

    def hf_batch(threads: int) -> Callable[[], np.ndarray]:
        def run() -> np.ndarray:
            torch.set_num_threads(threads)
            with torch.no_grad():
                out = hf_model.generate(
                    torch.tensor(prompts), attention_mask=torch.ones(prompts.shape, dtype=torch.long),
                    max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, use_cache=True,
                    pad_token_id=model.cfg.pad_token_id,
                )
            return out[:, prompt_len:].numpy()
        return run

    cases = {"phijax batch": phijax_batch, "phijax shared": phijax_shared}
    cases.update({f"hf batch {n}t": hf_batch(n) for n in sorted({1, TORCH_THREADS})})
    timed = best_times(cases, repeats)
    torch.set_num_threads(TORCH_THREADS)
    hf_tokens = timed["hf batch 1t"][1]
    rows = []
    for case, (seconds, tokens) in timed.items():
        reference = np.repeat(hf_tokens[:1], batch, 0) if case == "phijax shared" else hf_tokens
        rows.append({
            "preset": preset, "case": case, "batch": batch, "prompt_len": prompt_len, "new_tokens": new_tokens,
            "seconds": seconds, "tokens_per_s": batch * new_tokens / seconds,
            "agree": float(np.mean(np.all(tokens == reference, axis=1))),
        })
    hf_speed = max(r["tokens_per_s"] for r in rows if r["case"].startswith("hf"))
    for row in rows:
        row["vs_hf"] = row["tokens_per_s"] / hf_speed
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'preset':<10} {'case':<14} {'batch':>5} {'prompt':>6} {'new':>4} {'seconds':>8} "
          f"{'tokens/s':>9} {'vs HF':>6} {'agree':>6}")
    for r in rows:
        print(f"{r['preset']:<10} {r['case']:<14} {r['batch']:>5} {r['prompt_len']:>6} {r['new_tokens']:>4} "
              f"{r['seconds']:>8.3f} {r['tokens_per_s']:>9.1f} {r['vs_hf']:>5.2f}x {r['agree']:>6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "phi4-100m"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default="runs/bench_generate.json", help="where to write the results")
    args = parser.parse_args()
    rows = []
    for preset in args.presets:
        rows += bench_preset(preset, args.batch, args.prompt_len, args.new_tokens, args.repeats)
    print_table(rows)
    machine = {"backend": jax.default_backend(), "devices": jax.device_count(), "cpu": platform.processor(),
               "torch_threads": TORCH_THREADS, "cpu_count": os.cpu_count(), "jax": jax.__version__, "torch": torch.__version__}
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "results": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
