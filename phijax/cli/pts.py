"""`phijax pts`: Pivotal Token Search DPO pairs from a `PTSJob` config (phijax.pts.driver)."""

from __future__ import annotations

import argparse
from typing import Any

from phijax.cli.arguments import add_config_args, load_command_job


def add_parsers(sub: Any) -> None:
    """Register `pts`."""
    p = sub.add_parser("pts", help="find pivotal tokens in sampled solutions; write single-token DPO pairs")
    add_config_args(p, example="rollouts=16 curriculum.count=20")
    p.set_defaults(func=_cmd_pts)


def _cmd_pts(args: argparse.Namespace) -> int:
    """Load the job (and split the CPU into its mesh's devices, before jax starts), run the search."""
    job = load_command_job(args, "pts", "configs/tiny/pts.yaml")
    from phijax.pts.driver import run_pts

    run_pts(job)
    return 0
