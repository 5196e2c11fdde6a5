"""`phijax eval`: policies × evaluators → results table, results.json, samples (phijax.eval.run)."""

from __future__ import annotations

import argparse
from typing import Any

from phijax.cli.arguments import add_config_args, load_command_job


def add_parsers(sub: Any) -> None:
    """Register `eval`."""
    p = sub.add_parser("eval", help="score policies with evaluators; print a table, write results.json")
    add_config_args(p, example="limit=50 output_dir=runs/eval-quick")
    p.add_argument("--log-samples", action="store_true", help="also write samples_<evaluator>.jsonl")
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    """Load the `EvalJob` (`--log-samples` is `log_samples=true`), then score."""
    extra = ["log_samples=true"] if args.log_samples else []
    job = load_command_job(args, "eval", "configs/tiny/eval.yaml", extra)  # bad config fails before heavy imports
    from phijax.eval.run import evaluate_job

    evaluate_job(job)
    return 0
