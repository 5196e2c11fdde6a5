"""`phijax train` and `phijax dpo`: one training stage from a config (phijax.train.trainer)."""

from __future__ import annotations

import argparse
from typing import Any

from phijax.cli.arguments import add_config_args, need_config

EXAMPLES = {"train": "configs/tiny/pretrain.yaml", "dpo": "configs/tiny/dpo.yaml"}


def add_parsers(sub: Any) -> None:
    """Register `train` and `dpo`."""
    p = sub.add_parser("train", help="run a training stage from a config")
    add_config_args(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("dpo", help="run DPO on preference pairs (train with train.stage=dpo)")
    add_config_args(p)
    p.set_defaults(func=_cmd_dpo)


def _cmd_train(args: argparse.Namespace) -> int:
    """`phijax train`: exit 0 when done or preempted (SIGTERM), 130 after a Ctrl-C (saved first)."""
    need_config(args, args.command, EXAMPLES[args.command])
    from phijax.train.config import load_train_job

    job = load_train_job(args.config, args.overrides)
    job.validate()  # bad config fails before the heavy imports, with nothing written
    from phijax.train.trainer import train

    result = train(job)
    return 130 if result.signal == "SIGINT" else 0


def _cmd_dpo(args: argparse.Namespace) -> int:
    """`phijax dpo`: `phijax train` with `train.stage=dpo` (preference pairs, phijax.train.objectives.preference)."""
    args.overrides = [*args.overrides, "train.stage=dpo"]
    return _cmd_train(args)
