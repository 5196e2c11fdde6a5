"""`phijax data stats` and `phijax data decontam`: inspect and clean the training data."""

from __future__ import annotations

import argparse
from typing import Any

from phijax.cli.arguments import Parser, add_config_args, need_config
from phijax.errors import PhijaxError


def add_parsers(sub: Any) -> None:
    """Register `data` and its subcommands `stats` and `decontam`."""
    p = sub.add_parser("data", help="inspect the training data pipeline")
    data_sub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", parser_class=Parser)
    data_sub.required = True
    p = data_sub.add_parser("stats", help="iterate N global batches; report the mixture per source")
    add_config_args(p)
    p.add_argument("--batches", type=int, default=10, help="global batches to draw (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=_cmd_data_stats)
    p = data_sub.add_parser("decontam", help="drop training documents that overlap benchmarks (13/7-gram)")
    from phijax.data.decontam import cli as decontam

    decontam.add_arguments(p)
    p.set_defaults(func=decontam.run)


def _cmd_data_stats(args: argparse.Namespace) -> int:
    """Draw `--batches` global batches of a training config's data; print the mixture per source."""
    need_config(args, "data stats", "configs/tiny/pretrain.yaml")
    from phijax.train.config import load_train_job

    cfg = load_train_job(args.config, args.overrides)
    from phijax.data.stats import print_stats

    if args.batches < 1:
        raise PhijaxError(f"--batches must be at least 1, got {args.batches}")
    print_stats(cfg, args.batches, args.json)
    return 0
