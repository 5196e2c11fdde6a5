"""Where device time goes in a jax profiler trace: time per op category, busy share, top ops.

    python tools/profile_summary.py runs/bench_train_profile/none [--top 15]

Prints `phijax.train.profile`'s summary of the newest `perfetto_trace.json.gz` under the directory
(what `jax.profiler.trace(dir, create_perfetto_trace=True)` writes); that module's docstring says
which events count as ops on GPU, TPU and CPU, and how they are put into categories.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from phijax.train.profile import format_summary, summarise_dir


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("trace_dir", help="directory holding (under plugins/profile/...) a perfetto_trace.json.gz")
    p.add_argument("--top", type=int, default=15, help="how many ops to list")
    args = p.parse_args(argv)
    try:
        summary = summarise_dir(args.trace_dir, args.top)
    except FileNotFoundError as err:
        raise SystemExit(f"profile_summary: {err}") from None
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
