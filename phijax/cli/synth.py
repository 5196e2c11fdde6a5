"""`phijax synth`: the stages of `synth.stages` (phijax.synth.run); a summary line per stage."""

from __future__ import annotations

import argparse
from typing import Any

from phijax.cli.arguments import add_config_args, load_command_job


def add_parsers(sub: Any) -> None:
    """Register `synth`."""
    p = sub.add_parser("synth", help="make synthetic data: generator stages over a backend (cached, resumable)")
    add_config_args(p, example="synth.concurrency=8 synth.max_failures=5")
    p.set_defaults(func=_cmd_synth)


def _cmd_synth(args: argparse.Namespace) -> int:
    """Load the `SynthJob`, then run its stages (cached, resumable)."""
    job = load_command_job(args, "synth", "configs/tiny/synth.yaml")
    from phijax.synth.run import run_synth

    run_synth(job)
    return 0
