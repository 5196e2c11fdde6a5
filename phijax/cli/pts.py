"""`phijax pts`: Pivotal Token Search DPO pairs from a `PTSJob` config (phijax.pts.driver)."""

from __future__ import annotations

import argparse
from typing import Any

from phijax.cli.arguments import add_config_args, need_config


def add_parsers(sub: Any) -> None:
    """Register `pts`."""
    p = sub.add_parser("pts", help="find pivotal tokens in sampled solutions; write single-token DPO pairs")
    add_config_args(p, example="rollouts=16 curriculum.count=20")
    p.set_defaults(func=_cmd_pts)


def _cmd_pts(args: argparse.Namespace) -> int:
    """Load the job, split the CPU into devices if asked (before jax starts), run the search."""
    need_config(args, "pts", "configs/tiny/pts.yaml")
    from phijax.config import load_job
    from phijax.pts.config import PTSJob

    job = load_job(PTSJob, args.config, args.overrides)
    from phijax.parallel.mesh import request_cpu_devices

    request_cpu_devices(job.mesh.cpu_devices)  # before jax starts: the policy is loaded on the mesh
    from phijax.pts.driver import run_pts

    run_pts(job)
    return 0
