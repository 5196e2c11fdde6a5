"""`phijax config keys [COMMAND]`: every config key of a command, with its type, default and description."""

from __future__ import annotations

import argparse
from typing import Any

from phijax.cli.arguments import Parser


def add_parsers(sub: Any) -> None:
    """Register `config` and its subcommand `keys`."""
    p = sub.add_parser("config", help="document the config of each command")
    config_sub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND", parser_class=Parser)
    config_sub.required = True
    p = config_sub.add_parser("keys", help="every config key of a command: type, default, description")
    p.add_argument("job", nargs="?", metavar="COMMAND", help="train, pts, generate, ... (default: all)")
    p.set_defaults(func=_cmd_config_keys)


def _cmd_config_keys(args: argparse.Namespace) -> int:
    """Print the keys of one command's job root, or of every root (phijax.config.jobs)."""
    from phijax.config.jobs import JOB_ROOTS, describe_keys, format_keys, job_root

    roots = {command: job_root(command) for command in ([args.job] if args.job else sorted(JOB_ROOTS))}
    for i, (command, root) in enumerate(roots.items()):
        print(("\n" if i else "") + f"# phijax {command}")
        print(format_keys(describe_keys(root)))
    return 0
