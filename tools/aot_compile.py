"""Compile the train step for a TPU topology on this host (no TPU needed) and print per-chip memory.

    pip install "jax[tpu]==<your jax version>"   # libtpu: TPU topology descriptions on a CPU host
    python tools/aot_compile.py --topology v5p:4x4x4 --mesh 1,64,1 --global-batch 64 \
        --seq-len 4096 --remat full --compute-dtype bfloat16
    python tools/aot_compile.py --topology v5p:4x4x4 --num-slices 2 --global-batch 128 ...   # 2 x v5p-128

The step compiled is the real one (`phijax.train.step.make_train_step`, lowered with abstract
inputs by `phijax.train.memory.compile_train_step`) for the config in `--config` (default
configs/phi4-14b/pretrain.yaml) with the flags below applied as overrides. The per-chip numbers come
from `compiled.memory_analysis()`; the analytic estimate (fp32 params + 2 Adam moments + fp32 grads,
plus rough activations) is printed next to them. `--json FILE` also writes them as JSON.

`--num-slices N` compiles for N slices of the topology joined by the data-centre network (DCN), with
the two-level mesh `mesh.dcn_data=N` (and, without `--mesh`, `mesh.data=N`: one data replica per
slice, FSDP inside each), and lists the collectives of the compiled HLO that cross the DCN. libtpu
lowers those to host transfers (`send`/`recv` with `_xla_megascale_transfer_type`), one pair per
transfer; everything else stays on a slice's ICI. Counts are of the program text: a transfer inside
a loop (the scanned layers, gradient accumulation) runs once per iteration. `--hlo FILE` writes the
compiled HLO to read them in context.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from phijax.parallel.topology import TopologyError, tpu_topology

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "phi4-14b" / "pretrain.yaml"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--topology",
        default="v5p:2x2x2",
        help="TPU topology, GENERATION:SHAPE (v5p:2x2x2 = 8 chips, v5p:4x4x4 = 64 chips = v5p-128)",
    )
    p.add_argument(
        "--num-slices", type=int, default=1, help="slices of --topology joined by DCN; sets mesh.dcn_data (default 1)"
    )
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
    p.add_argument("--hlo", metavar="FILE", help="also write the compiled program's HLO text")
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
    elif args.num_slices > 1:
        out.append(f"mesh.data={args.num_slices}")
    if args.num_slices > 1 and not any(o.startswith("mesh.dcn_data=") for o in args.overrides):
        out.append(f"mesh.dcn_data={args.num_slices}")
    out.append(f"train.global_batch={args.global_batch or num_devices}")
    for flag, key in (
        ("grad_accum", "train.grad_accum"),
        ("seq_len", "train.seq_len"),
        ("remat", "model.remat"),
        ("compute_dtype", "model.compute_dtype"),
    ):
        if getattr(args, flag) is not None:
            out.append(f"{key}={getattr(args, flag)}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        topology = tpu_topology(args.topology, args.num_slices)
    except TopologyError as err:
        raise SystemExit(f"aot_compile: {err}") from None
    from phijax.errors import PhijaxError
    from phijax.train.config import load_train_job
    from phijax.train.memory import (
        analytic_memory,
        compile_train_step,
        compiled_memory,
        device_memory_gib,
    )

    devices = topology.devices
    try:
        cfg = load_train_job([args.config], overrides_from(args, len(devices)))
        start = time.perf_counter()
        compiled, layout, mesh = compile_train_step(cfg, devices)
    except PhijaxError as err:
        raise SystemExit(f"aot_compile: {err}") from None
    seconds = time.perf_counter() - start
    hbm = args.hbm_gib or device_memory_gib(devices[0])
    report = build_report(
        args,
        cfg,
        mesh,
        devices[0].device_kind,
        hbm,
        seconds,
        analytic_memory(cfg, layout, mesh),
        compiled_memory(compiled),
    )
    hlo = compiled.as_text() if args.num_slices > 1 or args.hlo else ""
    if args.num_slices > 1:
        report["dcn_collectives"] = dcn_collectives(hlo)
    if args.hlo:
        Path(args.hlo).write_text(hlo)
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


def build_report(
    args, cfg, mesh, device_kind: str, hbm_gib: float | None, seconds: float, analytic, compiled
) -> dict[str, Any]:
    """The numbers printed and written as JSON (bytes per chip)."""
    return {
        "topology": args.topology if args.num_slices == 1 else f"{args.num_slices} x {args.topology}",
        "device_kind": device_kind,
        "chips": mesh.devices.size,
        "mesh": dict(mesh.shape),
        "preset": cfg.model.preset,
        "global_batch": cfg.train.global_batch,
        "grad_accum": cfg.train.grad_accum,
        "seq_len": cfg.train.seq_len,
        "remat": cfg.model.remat,
        "compute_dtype": cfg.model.compute_dtype,
        "compile_s": round(seconds, 1),
        "hbm_gib": hbm_gib,
        "compiled": {
            "arguments": compiled.arguments,
            "outputs": compiled.outputs,
            "aliased": compiled.aliased,
            "temporaries": compiled.temporaries,
            "generated_code": compiled.generated_code,
            "total": compiled.total,
        },
        "analytic": {
            "params": analytic.params,
            "opt_state": analytic.opt_state,
            "grads": analytic.grads,
            "state_plus_grads": analytic.state + analytic.grads,
            "activations": analytic.activations,
            "total": analytic.total,
        },
    }


def format_report(r: dict[str, Any]) -> str:
    """A human-readable table: compiled numbers on the left, analytic estimate on the right."""

    def gib(n: int) -> str:
        return f"{n / 1024**3:8.2f} GiB"

    c, a = r["compiled"], r["analytic"]
    mesh = " ".join(f"{k}={v}" for k, v in r["mesh"].items())
    lines = [
        f"{r['preset']} train step on {r['topology']} ({r['chips']} x {r['device_kind']}), mesh {mesh}",
        (
            f"global batch {r['global_batch']} x {r['seq_len']} (grad_accum {r['grad_accum']}), "
            f"remat {r['remat']}, compute {r['compute_dtype']}; compiled in {r['compile_s']} s"
        ),
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
        lines.append(
            f"HBM {r['hbm_gib']:.0f} GiB per chip: {verdict} "
            f"({c['total'] / (r['hbm_gib'] * 1024**3):.0%} used by the compiled step)"
        )
    if "dcn_collectives" in r:
        lines += format_dcn(r["dcn_collectives"])
    return "\n".join(lines)


_TRANSFER = re.compile(
    r"^\s*%\S+ = \((?P<shape>[^)]*?)(?:\{[^}]*\})?, u32\[\], token\[\]\) send\(.*"
    r"_xla_megascale_transfer_type=\"(?P<kind>\w+)\""
)
_REDUCE = re.compile(r'_xla_megascale_reduce_operation="(\w+)"')
_RENDEZVOUS = re.compile(r'_xla_host_transfer_rendezvous="([^"]+)"')
_DTYPE_BYTES = {
    "pred": 1,
    "s8": 1,
    "u8": 1,
    "bf16": 2,
    "f16": 2,
    "s16": 2,
    "f32": 4,
    "s32": 4,
    "u32": 4,
    "f64": 8,
    "s64": 8,
}


def dcn_collectives(hlo_text: str) -> list[dict[str, Any]]:
    """The collectives of a compiled multi-slice TPU program that cross the DCN, one per `send`.

    Each: `kind` (ALL_REDUCE, ALL_GATHER, ...), `reduce` (SUM, ... or None), `shape` (what one chip
    sends, e.g. "f32[16,8,128]"; XLA packs several arrays into one buffer), `bytes`, `name` (the
    collective the transfer was made from).
    """
    out = []
    for line in hlo_text.splitlines():
        found = _TRANSFER.match(line)
        if not found:
            continue
        shape = found["shape"].split("{")[0]
        dtype, dims = shape.split("[")
        count = math.prod(int(d) for d in dims.rstrip("]").split(",") if d)
        reduce, rendezvous = _REDUCE.search(line), _RENDEZVOUS.search(line)
        out.append(
            {
                "kind": found["kind"],
                "reduce": reduce[1] if reduce else None,
                "shape": shape,
                "bytes": count * _DTYPE_BYTES.get(dtype, 4),
                "name": rendezvous[1].rsplit("_", 1)[0] if rendezvous else None,
            }
        )
    return out


def format_dcn(transfers: list[dict[str, Any]]) -> list[str]:
    """Report lines: per kind of DCN collective, how many and how many bytes one chip sends."""
    if not transfers:
        return ["collectives across DCN: none (every collective stays inside a slice)"]
    lines = ["collectives across DCN (one chip's sends, once per place in the program text):"]
    for kind in sorted({t["kind"] for t in transfers}):
        group = [t for t in transfers if t["kind"] == kind]
        reduce = {t["reduce"] for t in group} - {None}
        shapes = sorted({t["shape"] for t in group})
        shapes = ", ".join(shapes[:4]) + (", ..." if len(shapes) > 4 else "")
        lines.append(
            f"  {kind.lower().replace('_', '-')}{' (' + '/'.join(sorted(reduce)) + ')' if reduce else ''}: "
            f"{len(group)} transfers, {sum(t['bytes'] for t in group) / 1024**2:,.1f} MiB  [{shapes}]"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
