"""Training throughput on the current backend: tokens/s, step time, MFU and memory of the real train step.

    python tools/bench_train.py --preset phi4-100m --batch 4 --seq-len 256 --steps 5 --compare-hf
    python tools/bench_train.py --preset phi4-14b --batch 4 --seq-len 4096 --compute-dtype bfloat16 \
        --attention cudnn --hf-result hf.json --profile model.num_layers=4 \
        --remat none dots_no_batch full     # Phi-4 width, 4 layers, one H100: the GPU MFU target
                                            # (hf.json from the same flags with --hf-only, first)

The step is `phijax.train.step.make_train_step` (AdamW, clipping, chunked loss) on random tokens,
compiled ahead of time (`jit(...).lower(...).compile()`, its time reported as compile_s). After
`--warmup` untimed steps, `--steps` steps are timed one by one, each ended by `block_until_ready`.
tokens/s and MFU use the median step; the best (fastest) step is reported too, the steadier figure
on a shared host. MFU uses `phijax.train.metrics` (formula printed with the result). KEY=VALUE
arguments override the run config after the flags (e.g. `model.num_layers=4`); put them before
`--remat` or after another flag, as `--remat` takes every word that follows it.

Remat sweep: each `--remat` policy is its own configuration, benchmarked in turn with its own
compile and train state, the previous one's buffers freed first. Its memory is the compiler's
accounting of the compiled step per device (`memory_analysis()`: arguments + outputs - donated
aliases + temporaries + code). The device's `peak_bytes_in_use` is reported too, but jax cannot
reset it: it is the peak of the whole process so far, every configuration before included. A
configuration that runs out of memory (XLA's RESOURCE_EXHAUSTED) is a row "out of memory" and the
sweep goes on. The best configuration is the one with the highest median tokens/s.

`--documents-per-row 1` gives batches without `segment_ids`: causal attention only, no document
mask, the form cuDNN flash attention runs fastest. N > 1 packs N equal documents into every row
(segment ids 1..N, positions restarting at each document), the form of real pretraining.

`--compare-hf` trains the same model and batch in HF transformers (`Phi3ForCausalLM`, torch AdamW,
bf16 autocast on GPU when phijax computes in bf16). HF is timed once, taking turns step by step with
the first configuration that runs, and every configuration's phijax / HF tokens/s ratio is against
that one HF figure. JAX's GPU memory preallocation is turned off so that torch can allocate beside
it; if HF runs out of memory it is reported so and that configuration is timed again alone.

On one GPU the two sides' training states may not fit together (Phi-4 width, 4 layers: about
38 GB each), and jax keeps the GPU memory it took until its process ends: time HF first in a
process of its own with `--hf-only --json hf.json` (no jax work there), then phijax with
`--hf-result hf.json`, which refuses a file that timed another model or batch.

`--profile` traces `--profile-steps` more steps of every configuration that ran with
`jax.profiler.trace` into `<json name>_profile/<remat>/` beside the JSON file and summarises where
device time goes (`phijax.train.profile`; on CPU, the time of XLA's thunks). Prints a table, then the
profiles, and writes JSON
(`--json`, default runs/bench_train.json): the shared description, one record per configuration,
the best remat and the HF figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from phijax.train.profile import format_summary, summarise_dir

ROOT = Path(__file__).resolve().parents[1]

REMAT_POLICIES = ["none", "full", "dots", "dots_no_batch"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--mesh", default="1,-1,1", help="DATA,FSDP,TENSOR sizes, -1 = the rest")
    p.add_argument("--cpu-devices", type=int, help="split the CPU into this many devices")
    p.add_argument("--batch", type=int, default=8, help="global batch in sequences")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument(
        "--documents-per-row",
        type=int,
        default=1,
        help="1: no segment_ids (causal only); N: N packed documents per row",
    )
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument(
        "--remat",
        nargs="+",
        default=["none"],
        choices=REMAT_POLICIES,
        help="one or more policies, each benchmarked as its own configuration",
    )
    p.add_argument("--compute-dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--attention", default="xla", choices=["xla", "cudnn", "splash"])
    p.add_argument("--loss-chunk", type=int, default=1024)
    p.add_argument("--steps", type=int, default=5, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--peak-tflops", type=float, help="peak per device (default: by device kind)")
    p.add_argument("--compare-hf", action="store_true", help="also time HF transformers + torch AdamW")
    p.add_argument(
        "--hf-only",
        action="store_true",
        help="time only HF (no jax work) and write its figures, for --hf-result in another process",
    )
    p.add_argument("--hf-result", metavar="FILE", help="compare with the HF figures an --hf-only run wrote")
    p.add_argument("--profile", action="store_true", help="trace more steps and summarise device time")
    p.add_argument("--profile-steps", type=int, default=3)
    p.add_argument("--json", default=str(ROOT / "runs" / "bench_train.json"), metavar="FILE")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. model.num_layers=4")
    return p.parse_args(argv)


def check_flags(args: argparse.Namespace) -> None:
    """Refuse flag combinations the benchmark cannot honour, with the fix, before jax starts."""
    if args.compare_hf and args.grad_accum != 1:
        raise SystemExit("bench_train: --compare-hf trains HF in one pass; drop --grad-accum")
    if args.documents_per_row < 1 or args.seq_len % args.documents_per_row:
        raise SystemExit(
            f"bench_train: --documents-per-row {args.documents_per_row} must divide --seq-len "
            f"{args.seq_len}; choose a divisor of the sequence length"
        )
    if sum([args.compare_hf, args.hf_only, args.hf_result is not None]) > 1:
        raise SystemExit("bench_train: --compare-hf, --hf-only and --hf-result are alternatives; pick one")
    if (args.compare_hf or args.hf_only) and args.documents_per_row != 1:
        raise SystemExit(
            "bench_train: --compare-hf trains HF on one document per row; drop --documents-per-row or --compare-hf"
        )


def bench_config(args: argparse.Namespace, remat: str):
    """The run config of one configuration: the preset with the flags, `remat`, then the overrides."""
    from phijax.train.config import load_train_job

    data, fsdp, tensor = args.mesh.split(",")
    return load_train_job(
        [],
        [
            f"model.preset={args.preset}",
            f"model.remat={remat}",
            f"model.attention={args.attention}",
            f"model.compute_dtype={args.compute_dtype}",
            f"mesh.data={data}",
            f"mesh.fsdp={fsdp}",
            f"mesh.tensor={tensor}",
            f"train.global_batch={args.batch}",
            f"train.seq_len={args.seq_len}",
            f"train.grad_accum={args.grad_accum}",
            f"train.loss_chunk={args.loss_chunk}",
            f"train.steps={args.warmup + args.steps + args.profile * args.profile_steps}",
            "optim.warmup_steps=1",
            *args.overrides,
        ],
    )


def random_tokens(
    vocab: int, batch: int, seq_len: int, documents_per_row: int = 1, seed: int = 0
) -> dict[str, np.ndarray]:
    """Random ids and next-token targets [batch, seq_len], every token trained.

    One document per row: no `segment_ids`. N per row: N equal documents with segment ids 1..N and
    positions restarting at 0 at each document start.
    """
    ids = np.random.default_rng(seed).integers(0, vocab, (batch, seq_len + 1), dtype=np.int32)
    length = seq_len // documents_per_row
    positions = np.tile(np.arange(length, dtype=np.int32), (batch, documents_per_row))
    tokens = {
        "input_ids": ids[:, :-1],
        "targets": ids[:, 1:],
        "positions": positions,
        "loss_mask": np.ones((batch, seq_len), np.int32),
    }
    if documents_per_row > 1:
        segments = np.repeat(np.arange(1, documents_per_row + 1, dtype=np.int32), length)
        tokens["segment_ids"] = np.tile(segments, (batch, 1))
    return tokens


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


def phijax_step(cfg, mesh, tokens: dict[str, np.ndarray]) -> tuple[Callable[[], None], dict[str, int], float]:
    """(one blocking step of the compiled phijax train step, its compiled memory per device, compile s)."""
    import jax

    from phijax.parallel.mesh import batch_sharding
    from phijax.train.memory import compiled_memory
    from phijax.train.optim import make_optimizer
    from phijax.train.state import init_state, state_layout
    from phijax.train.step import make_train_step

    tx = make_optimizer(cfg.optim, cfg.train.steps)
    layout = state_layout(cfg.model, tx, mesh, cfg.mesh.rules)
    sharding = batch_sharding(mesh, cfg.mesh.rules)
    step = make_train_step(layout, tx, sharding, cfg.train.grad_accum, cfg.train.loss_chunk)
    batch = {k: jax.device_put(v, sharding) for k, v in tokens.items()}
    holder = {"state": init_state(cfg.model, tx, layout, seed=0)}
    start = time.perf_counter()
    compiled = step.lower(holder["state"], batch).compile()
    compile_s = time.perf_counter() - start
    memory = compiled_memory(compiled)

    def run_step() -> None:
        holder["state"], metrics = compiled(holder["state"], batch)
        jax.block_until_ready((holder["state"], metrics))

    return run_step, {**dataclasses.asdict(memory), "total": memory.total}, compile_s


def hf_step(model_cfg, tokens: dict[str, np.ndarray], optim) -> Callable[[], None]:
    """One blocking step of the same model in HF transformers + torch AdamW (bf16 autocast on GPU)."""
    import torch
    from transformers import Phi3Config, Phi3ForCausalLM

    from phijax.model.hf import config_to_hf

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = Phi3ForCausalLM(Phi3Config.from_dict(config_to_hf(model_cfg, "float32"))).to(device).train()
    adamw = torch.optim.AdamW(
        model.parameters(), lr=optim.peak_lr, betas=(optim.b1, optim.b2), eps=optim.eps, weight_decay=optim.weight_decay
    )
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


def step_stats(times: list[float], tokens_per_step: int) -> dict[str, Any]:
    """Median and best step time of timed steps, and the tokens/s of each."""
    step_time = statistics.median(times)
    return {
        "step_time_s": step_time,
        "step_times_s": times,
        "tokens_per_s": tokens_per_step / step_time,
        "best_step_time_s": min(times),
        "best_tokens_per_s": tokens_per_step / min(times),
    }


def out_of_memory_in(err: RuntimeError) -> str | None:
    """Which side ran out of device memory: "phijax" (XLA RESOURCE_EXHAUSTED), "HF torch", or None."""
    if type(err).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError, without importing torch
        return "HF torch"
    return "phijax" if "RESOURCE_EXHAUSTED" in str(err) else None


def profile_steps(run_step: Callable[[], None], trace_dir: Path, steps: int) -> dict[str, Any]:
    """Trace `steps` more steps (each marked as a step) and summarise the device time in the trace."""
    import jax

    with jax.profiler.trace(str(trace_dir), create_perfetto_trace=True):
        for i in range(steps):
            with jax.profiler.StepTraceAnnotation("train", step_num=i):
                run_step()
    return summarise_dir(trace_dir)


def bench_configuration(
    cfg, mesh, tokens: dict[str, np.ndarray], args: argparse.Namespace, hf_run: Callable[[], None] | None
) -> dict[str, Any]:
    """One remat configuration: compile, time (taking turns with `hf_run` if given), profile.

    Out of device memory gives a record with status "out of memory", the side that ran out and
    the error's first line; any other error is a bug and propagates.
    """
    from phijax.train import metrics

    remat = cfg.model.remat
    try:
        run_step, memory, compile_s = phijax_step(cfg, mesh, tokens)
        times = time_steps([run_step] + ([hf_run] if hf_run else []), args.warmup, args.steps)
        profile = profile_steps(run_step, profile_dir(args, remat), args.profile_steps) if args.profile else None
    except RuntimeError as err:
        side = out_of_memory_in(err)
        if side is None:
            raise
        return {
            "remat": remat,
            "status": "out of memory",
            "out_of_memory_in": side,
            "error": str(err).strip().splitlines()[0],
        }
    tokens_per_step = cfg.train.global_batch * cfg.train.seq_len
    record = {"remat": remat, "status": "ok", "compile_s": compile_s, **step_stats(times[0], tokens_per_step)}
    peak = metrics.peak_flops(list(mesh.devices.flat), args.peak_tflops)
    record["mfu"] = metrics.mfu(cfg.model, cfg.train.seq_len, record["tokens_per_s"], peak)
    record["compiled_memory_bytes"] = memory
    record["device_peak_bytes_in_use_so_far"] = _peak_memory(mesh.devices.flat[0])
    if hf_run:
        record["hf"] = {"status": "ok", **step_stats(times[1], tokens_per_step)}
    if profile:
        record["profile"] = profile
    return record


def profile_dir(args: argparse.Namespace, remat: str) -> Path:
    """Where a configuration's trace goes: <json name>_profile/<remat>/ beside the JSON file."""
    out = Path(args.json)
    return out.parent / f"{out.stem}_profile" / remat


def _peak_memory(device) -> int | None:
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    return (stats or {}).get("peak_bytes_in_use")


def free_device_memory() -> None:
    """Return the last configuration's buffers: collect reference cycles, empty torch's GPU cache."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def sweep(
    configs: list, mesh, tokens: dict[str, np.ndarray], args: argparse.Namespace
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(a record per configuration, the HF figures or None), HF timed beside the first that runs."""
    hf_run = hf_step(configs[0].model, tokens, configs[0].optim) if args.compare_hf else None
    records, hf = [], None
    for cfg in configs:
        record = bench_configuration(cfg, mesh, tokens, args, hf_run)
        if record.get("out_of_memory_in") == "HF torch":  # HF did not fit beside phijax: time phijax alone
            hf = {"status": "out of memory", "error": record["error"]}
            hf_run = None
            free_device_memory()
            record = bench_configuration(cfg, mesh, tokens, args, None)
        if "hf" in record:
            hf, hf_run = record.pop("hf"), None
        records.append(record)
        free_device_memory()
    return records, hf


def model_shape(args: argparse.Namespace, cfg) -> dict[str, Any]:
    """The model and batch an `--hf-only` timing must share with the phijax run compared with it."""
    return {
        "preset": args.preset,
        "num_layers": cfg.model.num_layers,
        "hidden_size": cfg.model.hidden_size,
        "global_batch": cfg.train.global_batch,
        "seq_len": cfg.train.seq_len,
        "compute_dtype": cfg.model.compute_dtype,
    }


def hf_only(args: argparse.Namespace) -> dict[str, Any]:
    """Time HF alone, with no jax work in this process: the `--hf-result` of a later phijax run."""
    import torch

    cfg = bench_config(args, args.remat[0])
    tokens = random_tokens(cfg.model.vocab_size, cfg.train.global_batch, cfg.train.seq_len)
    [times] = time_steps([hf_step(cfg.model, tokens, cfg.optim)], args.warmup, args.steps)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return {
        **model_shape(args, cfg),
        "torch_device": device,
        "torch": torch.__version__,
        "overrides": list(args.overrides),
        "hf": {"status": "ok", **step_stats(times, cfg.train.global_batch * cfg.train.seq_len)},
    }


def saved_hf(path: str, shape: dict[str, Any]) -> dict[str, Any]:
    """The HF figures of an `--hf-only` run, refused unless it timed the same model and batch."""
    try:
        saved = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise SystemExit(f"bench_train: --hf-result {path}: cannot read it ({err}); run --hf-only first") from None
    differ = [f"{k} {saved.get(k)!r} != {v!r}" for k, v in shape.items() if saved.get(k) != v]
    if differ or "hf" not in saved:
        raise SystemExit(
            f"bench_train: --hf-result {path} timed another model or batch "
            f"({'; '.join(differ) or 'no hf record'}); rerun --hf-only with these flags"
        )
    return {**saved["hf"], "source": f"separate process ({path})", "torch_device": saved.get("torch_device")}


def add_hf_ratios(ran: list[dict[str, Any]], hf: dict[str, Any]) -> None:
    """phijax / HF tokens/s (median steps, best steps) of every configuration that ran, against one HF timing."""
    for r in ran:
        r["hf_ratio"] = r["tokens_per_s"] / hf["tokens_per_s"]
        r["hf_ratio_best"] = r["best_tokens_per_s"] / hf["best_tokens_per_s"]


def describe(args: argparse.Namespace, cfg, mesh) -> dict[str, Any]:
    """What was measured, shared by every configuration: backend, devices, model and batch shape."""
    import jax

    from phijax.train import metrics

    device = mesh.devices.flat[0]
    return {
        **model_shape(args, cfg),
        "backend": jax.default_backend(),
        "device_kind": device.device_kind,
        "devices": int(mesh.devices.size),
        "mesh": dict(mesh.shape),
        "documents_per_row": args.documents_per_row,
        "grad_accum": cfg.train.grad_accum,
        "attention": cfg.model.attention,
        "overrides": list(args.overrides),
        "matmul_parameters": metrics.matmul_parameters(cfg.model),
        "flops_per_token": metrics.flops_per_token(cfg.model, cfg.train.seq_len),
        "peak_flops": metrics.peak_flops(list(mesh.devices.flat), args.peak_tflops),
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
    }


def format_table(r: dict[str, Any]) -> str:
    """The result as aligned lines: a row per configuration (and HF), then the best and the formulas."""
    mesh = " ".join(f"{k}={v}" for k, v in r["mesh"].items())
    documents = f"{r['documents_per_row']} document{'s' if r['documents_per_row'] > 1 else ''} per row"
    hf = r.get("hf")
    lines = [
        (
            f"{r['preset']} (num_layers {r['num_layers']}, hidden {r['hidden_size']}) on {r['devices']} x "
            f"{r['device_kind']} ({r['backend']}), mesh {mesh}, batch {r['global_batch']} x {r['seq_len']}, "
            f"{documents}, {r['compute_dtype']}, attention {r['attention']}"
        ),
        (
            f"  {'remat':<14}{'compile':>8}{'median step':>13}{'tokens/s':>12}{'best step':>11}{'tokens/s':>12}"
            f"{'MFU':>8}{'memory':>11}" + (f"{'vs HF':>14}" if hf else "")
        ),
    ]
    lines += [_row(c) for c in r["configurations"]]
    if hf:
        lines.append(
            f"  {'HF torch':<14}{'':>8}{_times(hf)}"
            if hf["status"] == "ok"
            else f"  {'HF torch':<14}out of memory ({hf['error'][:90]})"
        )
        taken = hf.get("source", "taken beside the first configuration that ran")
        lines.append(f"  vs HF: phijax / HF tokens/s, median steps / best steps, against the one HF timing, {taken}")
    lines.append(f"  best: {r['best_remat'] or 'no configuration ran'} (highest median tokens/s)")
    peak = f"{r['peak_flops'] / 1e12:.2f} TFLOP/s" if r["peak_flops"] else "unknown (pass --peak-tflops)"
    if r["backend"] == "cpu" and r["peak_flops"]:
        peak += " (this host's measured f32 matmul rate)"
    lines.append(
        f"  MFU = flops_per_token {r['flops_per_token']:.4g} x tokens/s / peak {peak}"
        f"  (flops_per_token = 6·N_matmul + 6·L·S·H·D_h, N_matmul {r['matmul_parameters']:,})"
    )
    lines.append("  memory: the compiled step per device (arguments + outputs - donated + temporaries + code)")
    peaks = [
        c["device_peak_bytes_in_use_so_far"] for c in r["configurations"] if c.get("device_peak_bytes_in_use_so_far")
    ]
    if peaks:
        lines.append(f"  device peak_bytes_in_use over the whole process: {max(peaks) / 1024**3:.2f} GiB")
    return "\n".join(lines)


def format_hf_only(r: dict[str, Any]) -> str:
    """One HF-only timing as a header and a row."""
    return (
        f"HF torch only: {r['preset']} (num_layers {r['num_layers']}) on {r['torch_device']}, batch "
        f"{r['global_batch']} x {r['seq_len']}, {r['compute_dtype']}\n"
        f"  {'':<14}{'median step':>12}{'tokens/s':>12}{'best step':>11}{'tokens/s':>12}\n"
        f"  {'HF torch':<14}{_times(r['hf'])}"
    )


def _row(c: dict[str, Any]) -> str:
    if c["status"] != "ok":
        return f"  {c['remat']:<14}out of memory in {c['out_of_memory_in']} ({c['error'][:90]})"
    mfu = f"{c['mfu']:.2%}" if c["mfu"] is not None else "n/a"
    ratio = f"{c['hf_ratio']:>8.2f}x/{c['hf_ratio_best']:.2f}x" if "hf_ratio" in c else ""
    return (
        f"  {c['remat']:<14}{c['compile_s']:>7.1f}s{_times(c)}{mfu:>8}"
        f"{c['compiled_memory_bytes']['total'] / 1024**3:>7.2f} GiB{ratio}"
    )


def _times(r: dict[str, Any]) -> str:
    return (
        f"{r['step_time_s'] * 1e3:>11.1f}ms{r['tokens_per_s']:>12,.0f}"
        f"{r['best_step_time_s'] * 1e3:>9.1f}ms{r['best_tokens_per_s']:>12,.0f}"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Benchmark every configuration; the result the table and JSON are made of."""
    from phijax.parallel.mesh import build_mesh

    configs = [bench_config(args, remat) for remat in args.remat]
    cfg = configs[0]
    mesh = build_mesh(cfg.mesh)
    rows = mesh.shape["data"] * mesh.shape["fsdp"] * cfg.train.grad_accum
    if cfg.train.global_batch % rows:
        raise SystemExit(
            f"bench_train: --batch {cfg.train.global_batch} must be a multiple of {rows} "
            f"(data x fsdp x grad_accum of mesh {dict(mesh.shape)}); change --batch or --mesh"
        )
    tokens = random_tokens(cfg.model.vocab_size, cfg.train.global_batch, cfg.train.seq_len, args.documents_per_row)
    result = describe(args, cfg, mesh)
    saved = saved_hf(args.hf_result, model_shape(args, cfg)) if args.hf_result else None  # refused before any compile
    records, hf = sweep(configs, mesh, tokens, args)
    hf = saved or hf
    ran = [r for r in records if r["status"] == "ok"]
    if hf:
        result["hf"] = hf
        if hf["status"] == "ok":
            add_hf_ratios(ran, hf)
    result["best_remat"] = max(ran, key=lambda r: r["tokens_per_s"])["remat"] if ran else None
    result["configurations"] = records
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    check_flags(args)
    if args.compare_hf:  # before jax starts: take GPU memory as needed, leaving torch room beside it
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    from phijax.errors import PhijaxError
    from phijax.parallel.mesh import request_cpu_devices

    request_cpu_devices(args.cpu_devices)  # before jax touches a backend
    try:
        result = hf_only(args) if args.hf_only else run(args)
    except PhijaxError as err:
        print(f"bench_train: {err}", file=sys.stderr)
        return 2
    print(format_hf_only(result) if args.hf_only else format_table(result))
    for c in result.get("configurations", []):
        if "profile" in c:
            print(f"\nprofile of remat {c['remat']}, {args.profile_steps} steps:\n{format_summary(c['profile'])}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
