"""Compile the train step for a TPU topology on this host (no TPU needed) and print per-chip memory.

    pip install "jax[tpu]==<your jax version>"   # libtpu: TPU topology descriptions on a CPU host
    python tools/aot_compile.py --topology v5p:4x4x4 --mesh 1,64,1 --global-batch 64 \
        --seq-len 4096 --remat full --compute-dtype bfloat16

The step compiled is the real one (`phijax.train.step.make_train_step`, lowered with abstract
inputs by `phijax.train.memory.compile_train_step`) for the config in `--config` (default
configs/phi4-14b/pretrain.yaml) with the flags below applied as overrides. The per-chip numbers come
from `compiled.memory_analysis()`; the analytic estimate (fp32 params + 2 Adam moments + fp32 grads,
plus rough activations) is printed next to them. `--json FILE` also writes them as JSON.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "phi4-14b" / "pretrain.yaml"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--topology", default="v5p:2x2x2",
                   help="TPU topology, GENERATION:SHAPE (v5p:2x2x2 = 8 chips, v5p:4x4x4 = 64 chips = v5p-128)")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="base YAML config")
    p.add_argument("--preset", help="model preset (default: the config's)")
    p.add_argument("--mesh", help="DATA,FSDP,TENSOR sizes, -1 = the rest (default: the config's)")
    p.add_argument("--global-batch", type=int, help="sequences per step (default: one per chip)")
    p.add_argument("--grad-accum", type=int, help="micro-batches per step")
    p.add_argument("--seq-len", type=int)
    p.add_argument("--remat", choices=["none", "full", "dots", "dots_no_batch"])
    p.add_argument("--compute-dtype", choices=["float32", "bfloat16"])
    p.add_argument("--hbm-gib", type=float, help="HBM per chip in GiB (default: by chip generation)")
    p.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="more config overrides")
    return p.parse_args(argv)


def overrides_from(args: argparse.Namespace, num_devices: int) -> list[str]:
    """Config overrides for the flags that were given (global batch defaults to one row per chip)."""
    out = list(args.overrides)
    if args.preset:
        out.append(f"model.preset={args.preset}")
    if args.mesh:
        data, fsdp, tensor = args.mesh.split(",")
        out += [f"mesh.data={data}", f"mesh.fsdp={fsdp}", f"mesh.tensor={tensor}"]
    out.append(f"train.global_batch={args.global_batch or num_devices}")
    for flag, key in (("grad_accum", "train.grad_accum"), ("seq_len", "train.seq_len"),
                      ("remat", "model.remat"), ("compute_dtype", "model.compute_dtype")):
        if getattr(args, flag) is not None:
            out.append(f"{key}={getattr(args, flag)}")
    return out


def quiet_libtpu_off_tpu() -> None:
    """On a host without TPUs: no TPU VM metadata queries (libtpu logs errors otherwise) and no
    libtpu lockfile (there is no TPU to share, so several compiles may run at once)."""
    if not glob.glob("/dev/accel*") and not glob.glob("/dev/vfio/[0-9]*"):
        os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
        os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
        os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")


def tpu_topology(name: str) -> Any:
    """jax's description of a TPU slice; SystemExit with the install command if libtpu is missing."""
    quiet_libtpu_off_tpu()
    import jax
    from jax.experimental import topologies

    try:
        return topologies.get_topology_desc(platform="tpu", topology_name=name)
    except RuntimeError as err:
        if "not installed" in str(err):
            raise SystemExit(f"aot_compile: libtpu is missing: pip install \"jax[tpu]=={jax.__version__}\"") from None
        reason = str(err).splitlines()[0]
        if "lockfile" in reason:
            raise SystemExit("aot_compile: another process holds libtpu (/tmp/libtpu_lockfile): wait for it, "
                             "or set ALLOW_MULTIPLE_LIBTPU_LOAD=1") from None
        raise SystemExit(f"aot_compile: no TPU topology {name!r} ({reason}); "
                         "write GENERATION:XxYxZ, e.g. v5p:2x2x2 or v5e:4x4") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    topology = tpu_topology(args.topology)
    from phijax.config import load_config
    from phijax.errors import PhijaxError
    from phijax.train.memory import (
        analytic_memory,
        compile_train_step,
        compiled_memory,
        device_memory_gib,
    )

    devices = topology.devices
    try:
        cfg = load_config([args.config], overrides_from(args, len(devices)))
        start = time.perf_counter()
        compiled, layout, mesh = compile_train_step(cfg, devices)
    except PhijaxError as err:
        raise SystemExit(f"aot_compile: {err}") from None
    seconds = time.perf_counter() - start
    hbm = args.hbm_gib or device_memory_gib(devices[0])
    report = build_report(args, cfg, mesh, devices[0].device_kind, hbm, seconds,
                          analytic_memory(cfg, layout, mesh), compiled_memory(compiled))
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


def build_report(args, cfg, mesh, device_kind: str, hbm_gib: float | None, seconds: float,
                 analytic, compiled) -> dict[str, Any]:
    """The numbers printed and written as JSON (bytes per chip)."""
    return {
        "topology": args.topology, "device_kind": device_kind, "chips": mesh.devices.size,
        "mesh": dict(mesh.shape), "preset": cfg.model.preset, "global_batch": cfg.train.global_batch,
        "grad_accum": cfg.train.grad_accum, "seq_len": cfg.train.seq_len, "remat": cfg.model.remat,
        "compute_dtype": cfg.model.compute_dtype, "compile_s": round(seconds, 1), "hbm_gib": hbm_gib,
        "compiled": {"arguments": compiled.arguments, "outputs": compiled.outputs,
                     "aliased": compiled.aliased, "temporaries": compiled.temporaries,
                     "generated_code": compiled.generated_code, "total": compiled.total},
        "analytic": {"params": analytic.params, "opt_state": analytic.opt_state, "grads": analytic.grads,
                     "state_plus_grads": analytic.state + analytic.grads,
                     "activations": analytic.activations, "total": analytic.total},
    }


def format_report(r: dict[str, Any]) -> str:
    """A human-readable table: compiled numbers on the left, analytic estimate on the right."""
    gib = lambda n: f"{n / 1024**3:8.2f} GiB"
    c, a = r["compiled"], r["analytic"]
    mesh = " ".join(f"{k}={v}" for k, v in r["mesh"].items())
    lines = [
        f"{r['preset']} train step on {r['topology']} ({r['chips']} x {r['device_kind']}), mesh {mesh}",
        (f"global batch {r['global_batch']} x {r['seq_len']} (grad_accum {r['grad_accum']}), "
         f"remat {r['remat']}, compute {r['compute_dtype']}; compiled in {r['compile_s']} s"),
        "per chip              compiled (memory_analysis)  |  analytic",
        f"  arguments            {gib(c['arguments'])}  |  params fp32      {gib(a['params'])}",
        f"  outputs              {gib(c['outputs'])}  |  adam moments     {gib(a['opt_state'])}",
        f"  aliased (donated)    {gib(c['aliased'])}  |  grads fp32       {gib(a['grads'])}",
        f"  temporaries          {gib(c['temporaries'])}  |  = state + grads  {gib(a['state_plus_grads'])}",
        f"  generated code       {gib(c['generated_code'])}  |  activations ~   {gib(a['activations'])}",
        f"  total                {gib(c['total'])}  |  total ~          {gib(a['total'])}",
    ]
    if r["hbm_gib"]:
        verdict = "fits" if c["total"] <= r["hbm_gib"] * 1024**3 else "DOES NOT FIT"
        lines.append(f"HBM {r['hbm_gib']:.0f} GiB per chip: {verdict} "
                     f"({c['total'] / (r['hbm_gib'] * 1024**3):.0%} used by the compiled step)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
