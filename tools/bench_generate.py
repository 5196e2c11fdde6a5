"""Benchmark rollout throughput (generated tokens/s) of phijax's sampler against HF `generate`.

    python tools/bench_generate.py [--presets tiny phi4-100m] [--batch 8] [--prompt-len 64]
                                   [--new-tokens 64] [--repeats 3] [--compute-dtype float32]
                                   [--json runs/bench_generate.json] [KEY=VALUE ...]
    # on one GPU: 4 layers of phi-4's width, bf16 weights on both sides
    python tools/bench_generate.py --presets phi4-14b --compute-dtype bfloat16 --batch 32 \\
                                   --prompt-len 512 --new-tokens 256 model.num_layers=4

For each preset: a randomly initialised model, its config overridden by the `model.*` KEY=VALUE
arguments (parsed as in `phijax train`), written with `save_hf` and loaded as transformers'
`Phi3ForCausalLM`, so both sides hold the same weights. `--compute-dtype` sets the model's
`param_dtype` and `compute_dtype`: phijax holds its weights in that dtype (built so, no fp32 copy)
and HF loads the saved weights in it, so on a memory-bound decode both read the same bytes per step.
Every case generates `--new-tokens` tokens greedily (no stop tokens) for `--batch` rows of
`--prompt-len` random prompt tokens:

- `phijax batch`:  `generate` on `batch` distinct prompts (prefill of every row, then decode);
- `phijax shared`: `sample_continuations` of one prompt, prefilled once and copied to `batch` rows
  (the PTS workload);
- `hf batch`:      `model.generate(..., do_sample=False, use_cache=True)` on the same prompts. On a
  CUDA GPU (when torch sees one) that is one case, timed up to `torch.cuda.synchronize()`; on CPU it
  is `hf batch Nt` for torch on N threads (1 and torch's default). `vs HF` compares with the
  fastest HF case.

phijax runs on jax's default backend. On a GPU both models live on it at once, one copy of the
weights each and no more (phijax's are built in the param dtype, HF's are moved there from host
memory); jax is told not to preallocate most of the GPU's memory so torch has room. At 4 layers of
phi4-14b width that is ~2.4B parameters, ~4.8 GB a side in bf16.

Each case runs once to warm up (jit compilation, torch allocations), then `--repeats` times timed,
the cases taking turns; the best time is reported. `agree` is the share of rows on which phijax's
greedy tokens equal HF's (the first HF case's): a check of the cache path against an independent
implementation. It is reported, never asserted: in bf16 the two sides round differently, so greedy
tokens may legitimately part at a near-tie of the logits (and then differ for the rest of the row).
Prints a table and writes the numbers and the machine (backends, devices, dtype, overrides) as JSON.
"""

from __future__ import annotations

import os

# Before jax starts: jax would otherwise grab 75% of the GPU's memory up front, leaving HF too little.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
import torch
import transformers
from flax import nnx
from transformers import Phi3ForCausalLM

from phijax.config import parse_override
from phijax.errors import ConfigError, PhijaxError
from phijax.inference.api import generate, sample_continuations
from phijax.inference.sampling import Sampling
from phijax.model.config import ModelConfig
from phijax.model.hf import save_hf
from phijax.model.phi4 import Phi4
from phijax.train.config import load_train_job

GREEDY = Sampling(temperature=0.0)
# torch's default thread count; on CPU HF is also timed on 1 thread, which wins on a busy shared
# machine (torch's spinning OpenMP threads suffer most from oversubscription).
TORCH_THREADS = torch.get_num_threads()
TORCH_DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_config(preset: str, dtype: str, overrides: Sequence[str]) -> ModelConfig:
    """The preset's model config with params and compute in `dtype`, then the `model.*` overrides.

    Raises ConfigError (one line) for a key outside `model`, an unknown key or a bad value.
    """
    for text in overrides:
        key, _ = parse_override(text)
        if not key.startswith("model."):
            raise ConfigError(f"override {text!r}: only model.* keys apply to this benchmark, e.g. model.num_layers=4")
    dtypes = [f"model.param_dtype={dtype}", f"model.compute_dtype={dtype}"]
    return load_train_job(overrides=[f"model.preset={preset}", *dtypes, *overrides]).model


def jit_init(cfg: ModelConfig) -> Phi4:
    """A randomly initialised model, built inside jit (fast even at 100M parameters), its params
    created directly in `cfg.param_dtype` on jax's default device."""

    def build() -> Phi4:
        return Phi4(cfg, rngs=nnx.Rngs(0))

    graphdef, _ = nnx.split(nnx.eval_shape(build))
    return nnx.merge(graphdef, jax.jit(lambda: nnx.split(build())[1])())


def hf_twin(model: Phi4) -> Phi3ForCausalLM:
    """The same weights as transformers' model, in the model's param dtype, on TORCH_DEVICE."""
    with tempfile.TemporaryDirectory() as hf_dir:
        save_hf(model, hf_dir)
        hf_model = Phi3ForCausalLM.from_pretrained(hf_dir, dtype=getattr(torch, model.cfg.param_dtype))
    return hf_model.to(TORCH_DEVICE).eval()


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


def phijax_cases(model: Phi4, prompts: np.ndarray, new_tokens: int) -> dict[str, Callable[[], np.ndarray]]:
    """`phijax batch` and `phijax shared` (rows of prompt 0); each returns tokens [batch, new_tokens]
    as numpy, so its timer sees the device finish."""

    def batch() -> np.ndarray:
        return generate(model, prompts.tolist(), max_new_tokens=new_tokens, sampling=GREEDY, stop_tokens=()).tokens

    def shared() -> np.ndarray:
        return sample_continuations(
            model, prompts[0].tolist(), len(prompts), max_new_tokens=new_tokens, sampling=GREEDY, stop_tokens=()
        ).tokens

    return {"phijax batch": batch, "phijax shared": shared}


def hf_cases(
    hf_model: Phi3ForCausalLM, prompts: np.ndarray, new_tokens: int, pad_id: int
) -> dict[str, Callable[[], np.ndarray]]:
    """Greedy HF `generate`: `hf batch` on a GPU, `hf batch Nt` per torch thread count on CPU."""
    ids = torch.tensor(prompts, device=TORCH_DEVICE)
    mask = torch.ones_like(ids)

    def run(threads: int | None) -> Callable[[], np.ndarray]:
        def generated() -> np.ndarray:
            if threads is not None:
                torch.set_num_threads(threads)
            with torch.no_grad():
                out = hf_model.generate(
                    ids,
                    attention_mask=mask,
                    max_new_tokens=new_tokens,
                    min_new_tokens=new_tokens,
                    do_sample=False,
                    use_cache=True,
                    pad_token_id=pad_id,
                )
            if TORCH_DEVICE.type == "cuda":
                torch.cuda.synchronize()  # the timer must see the GPU finish, not the last launch
            return out[:, prompts.shape[1] :].cpu().numpy()

        return generated

    if TORCH_DEVICE.type == "cuda":
        return {"hf batch": run(None)}
    return {f"hf batch {n}t": run(n) for n in sorted({1, TORCH_THREADS})}


def bench_preset(cfg: ModelConfig, batch: int, prompt_len: int, new_tokens: int, repeats: int) -> list[dict[str, Any]]:
    """One row per case: seconds (best of `repeats`), tokens/s, agreement with HF's tokens, vs HF."""
    model = jit_init(cfg)
    hf_model = hf_twin(model)
    prompts = np.random.RandomState(0).randint(3, cfg.vocab_size, (batch, prompt_len))
    hf = hf_cases(hf_model, prompts, new_tokens, cfg.pad_token_id)
    timed = best_times({**phijax_cases(model, prompts, new_tokens), **hf}, repeats)
    torch.set_num_threads(TORCH_THREADS)
    hf_tokens = timed[next(iter(hf))][1]
    rows = []
    for case, (seconds, tokens) in timed.items():
        reference = np.repeat(hf_tokens[:1], batch, 0) if case == "phijax shared" else hf_tokens
        rows.append(
            {
                "preset": cfg.preset,
                "case": case,
                "batch": batch,
                "prompt_len": prompt_len,
                "new_tokens": new_tokens,
                "num_layers": cfg.num_layers,
                "dtype": cfg.param_dtype,
                "seconds": seconds,
                "tokens_per_s": batch * new_tokens / seconds,
                "agree": float(np.mean(np.all(tokens == reference, axis=1))),
            }
        )
    hf_speed = max(r["tokens_per_s"] for r in rows if r["case"] in hf)
    for row in rows:
        row["vs_hf"] = row["tokens_per_s"] / hf_speed
    return rows


def machine(dtype: str, overrides: Sequence[str]) -> dict[str, Any]:
    """Where the numbers came from: both frameworks' devices and versions, the dtype, the overrides."""
    gpu = torch.cuda.get_device_name(TORCH_DEVICE) if TORCH_DEVICE.type == "cuda" else None
    return {
        "jax_backend": jax.default_backend(),
        "jax_device_kind": jax.devices()[0].device_kind,
        "jax_devices": jax.device_count(),
        "torch_device": str(TORCH_DEVICE),
        "torch_gpu": gpu,
        "dtype": dtype,
        "overrides": list(overrides),
        "cpu": platform.processor(),
        "cpu_count": os.cpu_count(),
        "torch_threads": TORCH_THREADS,
        "jax": jax.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'preset':<10} {'case':<14} {'layers':>6} {'dtype':>8} {'batch':>5} {'prompt':>6} {'new':>4} "
        f"{'seconds':>8} {'tokens/s':>9} {'vs HF':>6} {'agree':>6}"
    )
    for r in rows:
        print(
            f"{r['preset']:<10} {r['case']:<14} {r['num_layers']:>6} {r['dtype']:>8} {r['batch']:>5} "
            f"{r['prompt_len']:>6} {r['new_tokens']:>4} {r['seconds']:>8.3f} {r['tokens_per_s']:>9.1f} "
            f"{r['vs_hf']:>5.2f}x {r['agree']:>6.2f}"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "phi4-100m"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--compute-dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="weights and compute of both sides (phijax param_dtype and compute_dtype, HF dtype)",
    )
    parser.add_argument("--json", default="runs/bench_generate.json", help="where to write the results")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="model config overrides for every preset, e.g. model.num_layers=4",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        configs = [model_config(preset, args.compute_dtype, args.overrides) for preset in args.presets]
        rows = []
        for cfg in configs:
            rows += bench_preset(cfg, args.batch, args.prompt_len, args.new_tokens, args.repeats)
    except PhijaxError as err:
        print(f"bench_generate: {err}", file=sys.stderr)
        return 2
    print_table(rows)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"machine": machine(args.compute_dtype, args.overrides), "results": rows}, indent=2) + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
