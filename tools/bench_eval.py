"""Benchmark: `PhijaxLM` against lm-eval's own `hf` backend, same exported model, same requests, one run.

    python tools/bench_eval.py [--widths tiny phi4-100m] [--requests 64] [--prompts 8] [--repeats 2] [--json PATH]

For each width a random phijax model is saved and exported with `phijax convert to-hf`; both backends
load that HF directory. Measured, after one untimed call per backend on the same requests (so jax
compilation and torch's first-call costs are excluded), best of `--repeats`: log-likelihood requests/s
(multiple-choice requests built from the tiny arithmetic benchmark) and generated tokens/s (greedy,
`max_gen_toks` tokens, no stop string). CPU only; the JSON records the load average at the start.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "configs" / "tiny" / "benchmarks" / "arithmetic_mc.jsonl"


def export_model(width: str, directory: Path) -> Path:
    """A random `width` model saved as a model dir, then exported to HF with its tokenizer."""
    import jax
    from flax import nnx

    from phijax.model import convert
    from phijax.model.checkpoint import save_model_dir
    from phijax.model.config import preset_config
    from phijax.model.phi4 import Phi4

    cfg = preset_config(width)
    model = jax.jit(lambda: nnx.split(Phi4(cfg, rngs=nnx.Rngs(0)))[1])()
    model_dir = save_model_dir(nnx.to_pure_dict(model), cfg, directory / f"{width}-phijax")
    if width == "tiny":
        shutil.copy(ROOT / "configs" / "tiny" / "tokenizer.json", model_dir / "tokenizer.json")
    return convert.checkpoint_to_hf(model_dir, directory / f"{width}-hf")


def requests(n_loglik: int, n_prompts: int, max_gen_toks: int) -> tuple[list, list]:
    """Log-likelihood Instances (each question × each choice) and greedy generation Instances."""
    from lm_eval.api.instance import Instance

    docs = [json.loads(line) for line in BENCH.read_text().splitlines()]
    pairs = [(f"{d['question']}\nAnswer:", f" {c}") for d in docs for c in d["choices"]]
    loglik = [Instance("loglikelihood", {}, pairs[i % len(pairs)], i) for i in range(n_loglik)]
    gen_args = {"until": [], "max_gen_toks": max_gen_toks, "do_sample": False}
    gen = [
        Instance("generate_until", {}, (f"{docs[i % len(docs)]['question']}\n", dict(gen_args)), i)
        for i in range(n_prompts)
    ]
    return loglik, gen


def measure(lm, loglik: list, gen: list, repeats: int = 1) -> dict[str, float]:
    """requests/s and generated tokens/s of one backend: the best of `repeats` timed calls, after one
    untimed call on the very same requests (a warm-up on fewer requests would compile other shapes
    than the timed call's, and count jax compilation against phijax)."""
    lm.loglikelihood(loglik, disable_tqdm=True)
    lm.generate_until(gen, disable_tqdm=True)
    loglik_s = gen_s = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        lm.loglikelihood(loglik, disable_tqdm=True)
        loglik_s = min(loglik_s, time.perf_counter() - start)
        start = time.perf_counter()
        texts = lm.generate_until(gen, disable_tqdm=True)
        gen_s = min(gen_s, time.perf_counter() - start)
    tokens = sum(len(lm.tok_encode(t)) for t in texts)
    return {"loglik_req_per_s": len(loglik) / loglik_s, "gen_tok_per_s": tokens / gen_s, "gen_tokens": tokens}


def bench_width(width: str, args: argparse.Namespace, tmp: Path) -> dict[str, dict[str, float]]:
    from lm_eval.api.registry import get_model

    import phijax.eval  # noqa: F401 - registers `phijax`

    hf_dir = export_model(width, tmp)
    loglik, gen = requests(args.requests, args.prompts, args.max_gen_toks)
    out = {}
    for name, model_args in (
        ("phijax", f"pretrained={hf_dir},batch_size={args.batch_size}"),
        ("hf", f"pretrained={hf_dir},batch_size={args.batch_size},dtype=float32,device=cpu"),
    ):
        lm = get_model(name).create_from_arg_string(model_args)
        out[name] = measure(lm, loglik, gen, args.repeats)
        del lm
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", nargs="+", default=["tiny", "phi4-100m"])
    parser.add_argument("--requests", type=int, default=64, help="log-likelihood requests per backend")
    parser.add_argument("--prompts", type=int, default=8, help="generation prompts per backend")
    parser.add_argument("--max-gen-toks", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per backend and kind; the best counts")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    results = {"load_average": list(os.getloadavg())}
    with tempfile.TemporaryDirectory() as tmp:
        for width in args.widths:
            results[width] = bench_width(width, args, Path(tmp))
    print(f"{'width':<10} {'backend':<7} {'loglik req/s':>13} {'gen tok/s':>10}")
    for width, by_backend in results.items():
        if width == "load_average":
            continue
        for name, m in by_backend.items():
            print(f"{width:<10} {name:<7} {m['loglik_req_per_s']:>13.1f} {m['gen_tok_per_s']:>10.1f}")
        ratio = {k: by_backend["phijax"][k] / by_backend["hf"][k] for k in ("loglik_req_per_s", "gen_tok_per_s")}
        print(f"{width:<10} {'ratio':<7} {ratio['loglik_req_per_s']:>12.2f}x {ratio['gen_tok_per_s']:>9.2f}x")
        by_backend["ratio"] = ratio
    print(
        f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (start: {results['load_average']})"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
