"""`phijax params` and `phijax convert`: a model preset's parameter counts, checkpoint formats."""

from __future__ import annotations

import argparse
from typing import Any

from phijax.errors import PhijaxError


def add_parsers(sub: Any) -> None:
    """Register `params` and `convert`."""
    p = sub.add_parser("params", help="print parameter counts of a model preset")
    p.add_argument("--preset", required=True, help="preset name, e.g. phi4-14b")
    p.set_defaults(func=_cmd_params)

    p = sub.add_parser("convert", help="convert between HF Phi3ForCausalLM and phijax checkpoints")
    p.add_argument("direction", choices=["from-hf", "to-hf"])
    p.add_argument("src")
    p.add_argument("dst")
    p.set_defaults(func=_cmd_convert)


def _cmd_params(args: argparse.Namespace) -> int:
    """Print the parameter counts of `--preset` (pure arithmetic: no model is built)."""
    from phijax.model.config import preset_config
    from phijax.model.params import count_parameters, format_counts

    try:
        cfg = preset_config(args.preset)
    except KeyError as err:
        raise PhijaxError(err.args[0]) from None
    print(format_counts(args.preset, count_parameters(cfg)))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    """`from-hf SRC DST` or `to-hf SRC DST` (phijax.model.convert)."""
    from phijax.model import convert

    if args.direction == "from-hf":
        convert.hf_to_checkpoint(args.src, args.dst)
    else:
        convert.checkpoint_to_hf(args.src, args.dst)
    print(f"wrote {args.dst}")
    return 0
