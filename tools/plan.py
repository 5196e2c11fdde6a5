"""Memory plan of a training run: per-device params, optimizer, gradients, activations; does it fit?

    python tools/plan.py --preset phi4-14b --devices 8 --hbm-gib 80 --batch 8 --seq-len 4096   # 8 x H100
    python tools/plan.py --topology v5p:4x4x4 --batch 64 --seq-len 4096    # + compiled numbers (libtpu)

Analytic numbers need no accelerator: the train state's shard shapes come from the real layout on
`--devices` placeholder CPU devices (nothing is allocated). With `--topology` the real train step is
also compiled for that TPU slice (as tools/aot_compile.py does) and the compiler's total is shown.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "phi4-14b" / "pretrain.yaml"))
    p.add_argument("--preset", help="model preset (default: the config's)")
    p.add_argument("--devices", type=int, help="device count (default: the topology's, else 8)")
    p.add_argument("--topology", help="TPU topology to compile for, e.g. v5p:4x4x4 (needs libtpu)")
    p.add_argument("--mesh", default="1,-1,1", help="DATA,FSDP,TENSOR sizes, -1 = the rest")
    p.add_argument("--batch", type=int, help="global batch in sequences (default: one per device)")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--seq-len", type=int)
    p.add_argument("--remat", choices=["none", "full", "dots", "dots_no_batch"])
    p.add_argument("--compute-dtype", choices=["float32", "bfloat16"])
    p.add_argument("--hbm-gib", type=float, help="memory per device in GiB (default: by device kind)")
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="more config overrides, e.g. model.attention=cudnn"
    )
    return p.parse_args(argv)


def plan_overrides(args: argparse.Namespace, devices: int) -> list[str]:
    """Config overrides for the flags given."""
    data, fsdp, tensor = args.mesh.split(",")
    out = [
        f"mesh.data={data}",
        f"mesh.fsdp={fsdp}",
        f"mesh.tensor={tensor}",
        f"train.global_batch={args.batch or devices}",
        f"train.grad_accum={args.grad_accum}",
    ]
    for flag, key in (
        ("preset", "model.preset"),
        ("seq_len", "train.seq_len"),
        ("remat", "model.remat"),
        ("compute_dtype", "model.compute_dtype"),
    ):
        if getattr(args, flag) is not None:
            out.append(f"{key}={getattr(args, flag)}")
    return out + list(args.overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    topology = None
    if args.topology:
        from phijax.parallel.topology import TopologyError, tpu_topology

        try:
            topology = tpu_topology(args.topology)
        except TopologyError as err:
            raise SystemExit(f"plan: {err}") from None
    count = args.devices or (len(topology.devices) if topology else 8)
    flags = os.environ.get("XLA_FLAGS", "")  # placeholder CPU devices for the layout, before jax starts
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()
    import jax

    from phijax.errors import PhijaxError
    from phijax.parallel.mesh import build_mesh
    from phijax.train.config import load_train_job
    from phijax.train.memory import analytic_memory, device_memory_gib
    from phijax.train.optim import make_optimizer
    from phijax.train.state import state_layout

    try:
        cfg = load_train_job([args.config], plan_overrides(args, count))
        mesh = build_mesh(cfg.mesh, devices=jax.devices("cpu")[:count])
        layout = state_layout(cfg.model, make_optimizer(cfg.optim, cfg.train.steps), mesh, cfg.mesh.rules)
    except PhijaxError as err:
        raise SystemExit(f"plan: {err}") from None
    memory = analytic_memory(cfg, layout, mesh)
    hbm = args.hbm_gib or (device_memory_gib(topology.devices[0]) if topology else None)
    compiled_total = compiled_bytes(cfg, topology) if topology else None
    print(format_plan(cfg, dict(mesh.shape), memory, hbm, compiled_total))
    return 0


def compiled_bytes(cfg, topology) -> int:
    """Per-device total of the train step compiled for the TPU topology."""
    from phijax.train.memory import compile_train_step, compiled_memory

    compiled, _, _ = compile_train_step(cfg, topology.devices)
    return compiled_memory(compiled).total


def format_plan(cfg, mesh: dict[str, int], memory, hbm_gib: float | None, compiled_total: int | None) -> str:
    """The plan as a table, with the verdict against the device memory."""

    def gib(n: float) -> str:
        return f"{n / 1024**3:9.2f} GiB"

    rows = cfg.train.global_batch // cfg.train.grad_accum // (mesh["data"] * mesh["fsdp"])
    lines = [
        (
            f"{cfg.model.preset}: mesh {' '.join(f'{k}={v}' for k, v in mesh.items())}, batch "
            f"{cfg.train.global_batch} x {cfg.train.seq_len} (grad_accum {cfg.train.grad_accum}, "
            f"{rows} rows a device a micro-batch), remat {cfg.model.remat}, compute {cfg.model.compute_dtype}"
        ),
        "per device",
        f"  parameters (fp32)          {gib(memory.params)}",
        f"  optimizer (2 Adam moments) {gib(memory.opt_state)}",
        f"  gradients (fp32)           {gib(memory.grads)}",
        f"  activations (rough)        {gib(memory.activations)}",
        f"  total, analytic            {gib(memory.total)}",
    ]
    if compiled_total is not None:
        lines.append(f"  total, compiled            {gib(compiled_total)}")
    if hbm_gib:
        need = compiled_total if compiled_total is not None else memory.total
        verdict = "fits" if need <= hbm_gib * 1024**3 else "DOES NOT FIT"
        lines.append(f"{verdict} in {hbm_gib:.0f} GiB per device ({need / (hbm_gib * 1024**3):.0%})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
