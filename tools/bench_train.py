"""Training throughput on the current backend: tokens/s, step time and MFU of the real train step.

    python tools/bench_train.py --preset phi4-100m --batch 4 --seq-len 256 --steps 5 --compare-hf
    python tools/bench_train.py --preset phi4-1b --batch 8 --seq-len 4096 --compute-dtype bfloat16 \
        --remat dots_no_batch --attention cudnn          # on one GPU

The step is `phijax.train.step.make_train_step` (AdamW, clipping, chunked loss) on random tokens;
after `--warmup` untimed steps (the first compiles), `--steps` steps are timed one by one, each
ended by `block_until_ready`. tokens/s and MFU use the median step; the best (fastest) step is
reported too, the steadier figure on a shared host. MFU uses `phijax.train.metrics` (formula printed with the result).
`--compare-hf` trains the same model and batch in HF transformers (`Phi3ForCausalLM`, torch AdamW,
bf16 autocast on GPU when phijax computes in bf16) and reports phijax tokens/s / HF tokens/s.
Prints a table and writes JSON (`--json`, default runs/bench_train.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--mesh", default="1,-1,1", help="DATA,FSDP,TENSOR sizes, -1 = the rest")
    p.add_argument("--cpu-devices", type=int, help="split the CPU into this many devices")
    p.add_argument("--batch", type=int, default=8, help="global batch in sequences")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--remat", default="none", choices=["none", "full", "dots", "dots_no_batch"])
    p.add_argument("--compute-dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--attention", default="xla", choices=["xla", "cudnn"])
    p.add_argument("--loss-chunk", type=int, default=1024)
    p.add_argument("--steps", type=int, default=5, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation)")
    p.add_argument("--peak-tflops", type=float, help="peak per device (default: by device kind)")
    p.add_argument("--compare-hf", action="store_true", help="also time HF transformers + torch AdamW")
    p.add_argument("--json", default=str(ROOT / "runs" / "bench_train.json"), metavar="FILE")
    return p.parse_args(argv)


def bench_config(args: argparse.Namespace):
    """The run config the benchmark trains: the preset with the flags' shape and numerics."""
    from phijax.config import load_config

    data, fsdp, tensor = args.mesh.split(",")
    return load_config([], [
        f"model.preset={args.preset}", f"model.remat={args.remat}", f"model.attention={args.attention}",
        f"model.compute_dtype={args.compute_dtype}", f"mesh.data={data}", f"mesh.fsdp={fsdp}",
        f"mesh.tensor={tensor}", f"train.global_batch={args.batch}", f"train.seq_len={args.seq_len}",
        f"train.grad_accum={args.grad_accum}", f"train.loss_chunk={args.loss_chunk}",
        f"train.steps={args.warmup + args.steps}", "optim.warmup_steps=1",
    ])


def random_tokens(vocab: int, batch: int, seq_len: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A batch of one document per row: random ids, next-token targets, every token trained."""
    ids = np.random.default_rng(seed).integers(0, vocab, (batch, seq_len + 1), dtype=np.int32)
    positions = np.broadcast_to(np.arange(seq_len, dtype=np.int32), (batch, seq_len))
    ones = np.ones((batch, seq_len), np.int32)
    return {"input_ids": ids[:, :-1], "targets": ids[:, 1:], "positions": positions.copy(),
            "segment_ids": ones, "loss_mask": ones.copy()}


def time_steps(run_steps: Sequence[Callable[[], None]], warmup: int, steps: int) -> list[list[float]]:
    """Seconds of each of `steps` calls of every function, after `warmup` untimed calls of each.

    The functions take turns step by step, so a change in the host's load (a shared CI machine)
    hits all of them alike and their ratio stays fair. Each call blocks until its work is done.
    """
    for _ in range(warmup):
        for run_step in run_steps:
            run_step()
    times: list[list[float]] = [[] for _ in run_steps]
    for _ in range(steps):
        for run_step, out in zip(run_steps, times):
            start = time.perf_counter()
            run_step()
            out.append(time.perf_counter() - start)
    return times


def phijax_step(cfg, tokens: dict[str, np.ndarray]) -> tuple[Callable[[], None], Any]:
    """(one blocking phijax train step on `tokens`, the mesh it runs on)."""
    import jax

    from phijax.parallel.mesh import batch_sharding, build_mesh
    from phijax.train.optim import make_optimizer
    from phijax.train.state import init_state, state_layout
    from phijax.train.step import make_train_step

    mesh = build_mesh(cfg.mesh)
    rows = mesh.shape["data"] * mesh.shape["fsdp"] * cfg.train.grad_accum
    if cfg.train.global_batch % rows:
        raise SystemExit(f"bench_train: --batch {cfg.train.global_batch} must be a multiple of {rows} "
                         f"(data x fsdp x grad_accum of mesh {dict(mesh.shape)}); change --batch or --mesh")
    tx = make_optimizer(cfg.optim, cfg.train.steps)
    layout = state_layout(cfg.model, tx, mesh, cfg.mesh.rules)
    sharding = batch_sharding(mesh, cfg.mesh.rules)
    step = make_train_step(layout, tx, sharding, cfg.train.grad_accum, cfg.train.loss_chunk)
    batch = {k: jax.device_put(v, sharding) for k, v in tokens.items()}
    holder = {"state": init_state(cfg.model, tx, layout, seed=0)}

    def run_step() -> None:
        holder["state"], metrics = step(holder["state"], batch)
        jax.block_until_ready((holder["state"], metrics))

    return run_step, mesh


def hf_step(model_cfg, tokens: dict[str, np.ndarray], optim) -> Callable[[], None]:
    """One blocking step of the same model in HF transformers + torch AdamW (bf16 autocast on GPU)."""
    import torch
    from transformers import Phi3Config, Phi3ForCausalLM

    from phijax.model.hf import config_to_hf

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = Phi3ForCausalLM(Phi3Config.from_dict(config_to_hf(model_cfg, "float32"))).to(device).train()
    adamw = torch.optim.AdamW(model.parameters(), lr=optim.peak_lr, betas=(optim.b1, optim.b2),
                              eps=optim.eps, weight_decay=optim.weight_decay)
    ids = torch.from_numpy(tokens["input_ids"]).long().to(device)  # HF shifts labels itself
    autocast = device == "cuda" and model_cfg.compute_dtype == "bfloat16"

    def run_step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), optim.clip_grad_norm)
        adamw.step()
        adamw.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()

    return run_step


def summarise(cfg, mesh, times: list[float], peak_tflops: float | None) -> dict[str, Any]:
    """Step time (median), tokens/s and MFU of timed steps, with the FLOPs that MFU counts."""
    from phijax.train import metrics

    devices = list(mesh.devices.flat)
    step_time = statistics.median(times)
    tokens_per_s = cfg.train.global_batch * cfg.train.seq_len / step_time
    best_tokens_per_s = cfg.train.global_batch * cfg.train.seq_len / min(times)
    peak = metrics.peak_flops(devices, peak_tflops)
    return {
        "step_time_s": step_time, "step_times_s": times, "tokens_per_s": tokens_per_s,
        "best_step_time_s": min(times), "best_tokens_per_s": best_tokens_per_s,
        "flops_per_token": metrics.flops_per_token(cfg.model, cfg.train.seq_len),
        "peak_flops": peak, "mfu": metrics.mfu(cfg.model, cfg.train.seq_len, tokens_per_s, peak),
        "peak_memory_bytes": _peak_memory(devices[0]),
    }


def _peak_memory(device) -> int | None:
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    return (stats or {}).get("peak_bytes_in_use")


def describe(args: argparse.Namespace, cfg, mesh) -> dict[str, Any]:
    """What was measured: backend, devices, model and batch shape."""
    import jax

    from phijax.train.metrics import matmul_parameters

    device = mesh.devices.flat[0]
    return {
        "preset": args.preset, "backend": jax.default_backend(), "device_kind": device.device_kind,
        "devices": int(mesh.devices.size), "mesh": dict(mesh.shape), "global_batch": cfg.train.global_batch,
        "seq_len": cfg.train.seq_len, "grad_accum": cfg.train.grad_accum, "remat": cfg.model.remat,
        "compute_dtype": cfg.model.compute_dtype, "attention": cfg.model.attention,
        "matmul_parameters": matmul_parameters(cfg.model), "warmup_steps": args.warmup,
        "timed_steps": args.steps,
    }


def format_table(r: dict[str, Any]) -> str:
    """The result as a few aligned lines, the MFU formula with its numbers last."""
    mesh = " ".join(f"{k}={v}" for k, v in r["mesh"].items())
    mfu = f"{r['mfu']:.2%}" if r["mfu"] is not None else "n/a (unknown peak: pass --peak-tflops)"
    lines = [
        (f"{r['preset']} on {r['devices']} x {r['device_kind']} ({r['backend']}), mesh {mesh}, "
         f"batch {r['global_batch']} x {r['seq_len']}, remat {r['remat']}, {r['compute_dtype']}"),
        f"  {'':<10}{'median step':>12}{'tokens/s':>14}{'best step':>12}{'tokens/s':>14}",
        _row("phijax", r),
    ]
    if "hf" in r:
        hf = r["hf"]
        lines.append(_row("HF torch", hf))
        lines.append(f"  phijax / HF tokens/s: {r['hf_ratio']:.2f}x (median steps), "
                     f"{r['hf_ratio_best']:.2f}x (best steps)")
    peak = f"{r['peak_flops'] / 1e12:.2f} TFLOP/s" if r["peak_flops"] else "unknown"
    lines.append(f"  MFU {mfu} = flops_per_token {r['flops_per_token']:.4g} x tokens/s / peak {peak}"
                 f"  (flops_per_token = 6·N_matmul + 6·L·S·H·D_h, N_matmul {r['matmul_parameters']:,})")
    if r["peak_memory_bytes"]:
        lines.append(f"  peak memory {r['peak_memory_bytes'] / 1024**3:.2f} GiB per device")
    return "\n".join(lines)


def _row(name: str, r: dict[str, Any]) -> str:
    return (f"  {name:<10}{r['step_time_s'] * 1e3:>10.1f}ms{r['tokens_per_s']:>14,.0f}"
            f"{r['best_step_time_s'] * 1e3:>10.1f}ms{r['best_tokens_per_s']:>14,.0f}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.compare_hf and args.grad_accum != 1:
        raise SystemExit("bench_train: --compare-hf trains HF in one pass; drop --grad-accum")
    from phijax.parallel.mesh import request_cpu_devices

    request_cpu_devices(args.cpu_devices)  # before jax touches a backend
    cfg = bench_config(args)
    tokens = random_tokens(cfg.model.vocab_size, cfg.train.global_batch, cfg.train.seq_len)
    run_phijax, mesh = phijax_step(cfg, tokens)
    runs = [run_phijax] + ([hf_step(cfg.model, tokens, cfg.optim)] if args.compare_hf else [])
    times = time_steps(runs, args.warmup, args.steps)
    result = {**describe(args, cfg, mesh), **summarise(cfg, mesh, times[0], args.peak_tflops)}
    if args.compare_hf:
        hf_times = times[1]
        hf_step_time = statistics.median(hf_times)
        hf_tokens = cfg.train.global_batch * cfg.train.seq_len / hf_step_time
        hf_best = cfg.train.global_batch * cfg.train.seq_len / min(hf_times)
        result["hf"] = {"step_time_s": hf_step_time, "step_times_s": hf_times, "tokens_per_s": hf_tokens,
                        "best_step_time_s": min(hf_times), "best_tokens_per_s": hf_best}
        result["hf_ratio"] = result["tokens_per_s"] / hf_tokens
        result["hf_ratio_best"] = result["best_tokens_per_s"] / hf_best
    print(format_table(result))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
