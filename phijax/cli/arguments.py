"""What every command group shares: the parser class, the `--config FILE [KEY=VALUE ...]` arguments.

A config command without `--config` stops with one line and an example (`need_config`), before any
heavy import: running a stage on defaults alone is never what the user meant.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from phijax.errors import PhijaxError


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as a `PhijaxError` (one line, exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise PhijaxError(f"{message} (see `{self.prog} --help`)")


def add_config_args(p: argparse.ArgumentParser, example: str = "train.steps=30 mesh.fsdp=4") -> None:
    """`--config FILE` (repeatable, later wins) and positional `key.sub=value` overrides (`example`: some)."""
    p.add_argument(
        "--config", action="append", default=[], metavar="FILE", help="YAML config; repeat to layer files (later wins)"
    )
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=f"dotted overrides, e.g. {example}")


def need_config(args: argparse.Namespace, command: str, example: str) -> None:
    """Refuse `phijax COMMAND` without `--config` in one line that shows a config to start from."""
    if not args.config:
        raise PhijaxError(f"phijax {command} needs --config FILE, e.g. --config {example}")


def load_command_job(
    args: argparse.Namespace, command: str, example: str | None = None, extra: Sequence[str] = ()
) -> Any:
    """The job of `command`'s config root from `--config` files and overrides (then `extra`), checked
    before any heavy import; `--config` demanded when `example` is given (`need_config`). A job with a
    `mesh` gets its `mesh.cpu_devices` split of the CPU here, before jax starts, for every command alike.
    """
    if example is not None:
        need_config(args, command, example)
    from phijax.config.jobs import job_root
    from phijax.config.loader import load_job

    job = load_job(job_root(command), args.config, [*args.overrides, *extra])
    mesh = getattr(job, "mesh", None)
    if mesh is not None:
        from phijax.parallel.mesh import request_cpu_devices

        request_cpu_devices(mesh.cpu_devices)
    return job
