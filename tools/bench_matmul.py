"""The matmul ceiling of the current device: TFLOP/s of one large square matrix product in jax.

    python tools/bench_matmul.py                                  # f32 2048³ (a CPU host)
    python tools/bench_matmul.py --size 8192 --dtype bfloat16     # one GPU

MFU divides by the vendor's peak (`phijax.train.metrics.PEAK_TFLOPS`; on a CPU, by its f32 rate of
1024³ products, measured per process); this measures what the device actually sustains on the
simplest possible work, so a train step's FLOP rate can also be read as a share of it. `--repeats`
products are timed one by one after a warm-up (the compile),
each ended by `block_until_ready`, on random data (zeros run faster on some GPUs). Reports the
median and best rate; prints a table and writes JSON (`--json`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=2048, help="M = N = K")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--json", default=str(ROOT / "runs" / "bench_matmul.json"), metavar="FILE")
    return p.parse_args(argv)


def measure(size: int, dtype: str, repeats: int) -> dict[str, Any]:
    """Seconds of `repeats` [size, size] @ [size, size] products and their FLOP rates."""
    import jax

    from phijax.train.metrics import matmul_seconds

    times = matmul_seconds(size, dtype, repeats)
    flops = 2 * size**3
    return {
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "size": size,
        "dtype": dtype,
        "times_s": times,
        "median_tflops": flops / statistics.median(times) / 1e12,
        "best_tflops": flops / min(times) / 1e12,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    r = measure(args.size, args.dtype, args.repeats)
    print(
        f"{r['size']}³ {r['dtype']} matmul on {r['device_kind']} ({r['backend']}): "
        f"{r['median_tflops']:.2f} TFLOP/s median, {r['best_tflops']:.2f} best of {args.repeats} "
        f"(FLOPs = 2·size³)"
    )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
