"""Where device time goes in a jax profiler trace: time per op category, busy share, top ops.

`tools/profile_summary.py TRACE_DIR` prints it; `tools/bench_train.py --profile` summarises each
configuration it traced. Reads the newest `perfetto_trace.json.gz` under a directory (what
`jax.profiler.trace(dir, create_perfetto_trace=True)` writes: Chrome trace JSON, times in µs).

Op events are complete events ("ph": "X"). On an accelerator they are those on processes named
`/device:...`, on their op timelines: on GPU the CUPTI kernel lines `Stream #N(...)` (event name =
kernel name, `args.hlo_op` = the HLO instruction that launched it, absent for kernels replayed from a
CUDA graph), else TPU-style `XLA Ops` lines. Timelines derived from those (`XLA Modules`, `Steps`,
scopes) would count the same time twice and are skipped. On CPU no device process has op lines: XLA runs
each HLO instruction as a thunk on the host's `tf_XLA...` threads, and those events carry `args.hlo_op`;
they are the op events there, less the control-flow thunks (`while`, `conditional`, `call`) whose time
is that of the thunks they run.

Categories, by the first pattern found in the kernel or HLO op name (lower case):
collective (nccl, all-reduce, ...), attention (cudnn, fmha, flash, sdpa), matmul (gemm, cublas,
cutlass, nvjet, xmma, dot), copy (memcpy, memset, copy), other (fusions, elementwise, reductions).
Attention comes before matmul because cuDNN attention kernels may also carry gemm-like names. On CPU
a matmul fused with its neighbours (`ynn_fusion.N`, XLA's YNNPACK fusions, which also hold reductions)
counts as other: the top ops name each fusion for a look-up in the compiled HLO.

Shares are of summed op time, so they add up to 1 even when streams (or CPU threads) overlap; busy
time is the union of op intervals, and its share of wall time says how much of the profiled steps
the device spent idle (waiting on the host). Steps are the `StepTraceAnnotation` events (args carry
`step_num`); wall time is their span, or the whole trace's span without them.
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

CATEGORIES = {
    "collective": (
        "nccl",
        "all-reduce",
        "all-gather",
        "reduce-scatter",
        "collective-permute",
        "all-to-all",
        "allreduce",
        "allgather",
        "reducescatter",
    ),
    "attention": ("cudnn", "fmha", "flash", "sdpa"),
    "matmul": ("gemm", "cublas", "cutlass", "nvjet", "xmma", "dot"),
    "copy": ("memcpy", "memset", "copy"),
}
OTHER = "other"
NO_DEVICE_OPS = (
    "the trace has no op events (no /device: process with op timelines, no CPU thunk "
    "events with an hlo_op): no device time breakdown"
)
CONTROL_FLOW = ("while", "conditional", "call")


def newest_trace(trace_dir: str | Path) -> Path:
    """The most recently written perfetto_trace.json.gz under `trace_dir`."""
    traces = list(Path(trace_dir).rglob("perfetto_trace.json.gz"))
    if not traces:
        raise FileNotFoundError(
            f"no perfetto_trace.json.gz under {trace_dir}: profile with "
            "jax.profiler.trace(dir, create_perfetto_trace=True)"
        )
    return max(traces, key=lambda p: p.stat().st_mtime)


def load_events(path: Path) -> list[dict[str, Any]]:
    """The trace's event list."""
    with gzip.open(path, "rt") as f:
        return json.load(f)["traceEvents"]


def device_op_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Complete events on the op timelines of device processes, or, where those hold none (a CPU run:
    no device process, or only a `/device:CUSTOM:...` one of libtpu's), the CPU thunks (see the module
    docstring)."""
    processes = {e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"}
    devices = [pid for pid, name in processes.items() if name.startswith("/device:")]
    threads = {
        (e["pid"], e["tid"]): e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "thread_name"
    }
    op_threads = set()
    for pid in devices:
        lines = {key: line for key, line in threads.items() if key[0] == pid}
        streams = {key for key, line in lines.items() if line.startswith("Stream #")}
        op_threads |= streams or {key for key, line in lines.items() if line == "XLA Ops"}
    ops = [e for e in events if e.get("ph") == "X" and (e.get("pid"), e.get("tid")) in op_threads]
    return ops or cpu_thunk_events(events)


def cpu_thunk_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """XLA CPU thunks: complete events naming their HLO instruction, control-flow thunks left out."""
    return [e for e in events if e.get("ph") == "X" and _hlo_op(e) and _hlo_op(e).split(".")[0] not in CONTROL_FLOW]


def category(kernel: str, hlo_op: str | None) -> str:
    """The op category of a device event from its kernel name and the HLO op that launched it."""
    text = f"{kernel} {hlo_op or ''}".lower()
    for name, patterns in CATEGORIES.items():
        if any(p in text for p in patterns):
            return name
    return OTHER


def busy_time(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end) intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def step_window(events: list[dict[str, Any]]) -> tuple[int | None, float]:
    """(steps marked by StepTraceAnnotation or None, wall µs they span — else the whole trace's)."""
    complete = [e for e in events if e.get("ph") == "X"]
    steps = [e for e in complete if "step_num" in e.get("args", {})]
    window = steps or complete
    if not window:
        return (None, 0.0)
    wall = max(e["ts"] + e["dur"] for e in window) - min(e["ts"] for e in window)
    return (len(steps) or None, wall)


def summarise(events: list[dict[str, Any]], top: int = 15) -> dict[str, Any]:
    """Per-category device time (ms, ms per step, share), busy share of wall time, top ops."""
    steps, wall_us = step_window(events)
    ops = device_op_events(events)
    summary: dict[str, Any] = {"steps": steps, "wall_ms": wall_us / 1e3, "device_op_events": len(ops)}
    if not ops:
        return {**summary, "note": NO_DEVICE_OPS}
    op_us = sum(e["dur"] for e in ops)
    busy_us = busy_time([(e["ts"], e["ts"] + e["dur"]) for e in ops])
    per_category: dict[str, float] = defaultdict(float)
    for e in ops:
        per_category[category(e["name"], _hlo_op(e))] += e["dur"]
    return {
        **summary,
        "op_time_ms": op_us / 1e3,
        "device_busy_ms": busy_us / 1e3,
        "device_busy_share_of_wall": busy_us / wall_us,
        "categories": {
            name: _time(us, op_us, steps) for name, us in sorted(per_category.items(), key=lambda item: -item[1])
        },
        "top_ops": top_ops(ops, op_us, top),
    }


def top_ops(ops: list[dict[str, Any]], op_us: float, top: int) -> list[dict[str, Any]]:
    """The `top` (HLO op, kernel) pairs by total device time."""
    totals: dict[tuple[str | None, str], list[float]] = defaultdict(list)
    for e in ops:
        totals[(_hlo_op(e), e["name"])].append(e["dur"])
    ranked = sorted(totals.items(), key=lambda item: -sum(item[1]))[:top]
    return [
        {
            "hlo_op": op,
            "kernel": kernel,
            "category": category(kernel, op),
            "count": len(durs),
            "ms": sum(durs) / 1e3,
            "share": sum(durs) / op_us,
        }
        for (op, kernel), durs in ranked
    ]


def _hlo_op(event: dict[str, Any]) -> str | None:
    return event.get("args", {}).get("hlo_op")


def _time(us: float, op_us: float, steps: int | None) -> dict[str, float | None]:
    return {"ms": us / 1e3, "ms_per_step": us / 1e3 / steps if steps else None, "share": us / op_us}


def summarise_dir(trace_dir: str | Path, top: int = 15) -> dict[str, Any]:
    """`summarise` of the newest trace under `trace_dir`, with the trace's path."""
    path = newest_trace(trace_dir)
    return {"trace": str(path), **summarise(load_events(path), top)}


def format_summary(s: dict[str, Any]) -> str:
    """The summary as aligned lines: busy share, categories, top ops."""
    steps = f"{s['steps']} steps" if s["steps"] else "no step markers"
    lines = [f"{s['trace']}: {steps}, {s['wall_ms']:.1f} ms wall"]
    if "note" in s:
        return "\n".join(lines + [f"  {s['note']}"])
    lines.append(
        f"  device busy {s['device_busy_ms']:.2f} ms = {s['device_busy_share_of_wall']:.1%} of wall; "
        f"device op time {s['op_time_ms']:.1f} ms over {s['device_op_events']} op events"
    )
    lines.append(f"  {'category':<12}{'ms':>10}{'ms/step':>10}{'share':>8}")
    for name, c in s["categories"].items():
        per_step = f"{c['ms_per_step']:>10.2f}" if c["ms_per_step"] is not None else f"{'':>10}"
        lines.append(f"  {name:<12}{c['ms']:>10.2f}{per_step}{c['share']:>8.1%}")
    lines.append(f"  {'top ops':<28}{'ms':>10}{'share':>8}{'count':>7}  category    kernel")
    for op in s["top_ops"]:
        lines.append(
            f"  {str(op['hlo_op'] or '-')[:28]:<28}{op['ms']:>10.2f}{op['share']:>8.1%}{op['count']:>7}"
            f"  {op['category']:<12}{op['kernel'][:70]}"
        )
    return "\n".join(lines)
