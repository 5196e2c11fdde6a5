"""`phijax data decontam` arguments; light to import (the work is in `phijax.data.decontam.run`)."""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `phijax data decontam` (phijax/cli/data.py registers the subcommand)."""
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="training config: its data.sources are the inputs, its data.decontaminate the settings",
    )
    parser.add_argument("--input", action="append", default=[], metavar="GLOB", help="JSONL training files (repeat)")
    parser.add_argument("--text-field", default="text", help="document field of --input files (default text)")
    parser.add_argument(
        "--benchmark",
        action="append",
        default=[],
        metavar="NAME=GLOB[,GLOB][:FIELD,FIELD]",
        help="a benchmark's JSONL files and (optionally) its text fields (repeat)",
    )
    parser.add_argument(
        "--eval-config",
        action="append",
        default=[],
        metavar="FILE",
        help="a `phijax eval` config (EvalJob): index the items of every evaluator it lists (repeat)",
    )
    parser.add_argument("--settings", metavar="FILE", help="YAML mapping of data.decontaminate settings")
    parser.add_argument("--out", metavar="DIR", help="output directory: cleaned shards, flagged.jsonl, report.json")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="worker processes (default: cores)")
    parser.add_argument("--host-index", type=int, default=0, help="this host's index (multi-host)")
    parser.add_argument("--host-count", type=int, default=1, help="number of hosts sharing the files")
    parser.add_argument("--merge", action="store_true", help="merge the per-host reports in --out, then exit")
    parser.add_argument("--json", action="store_true", help="print report.json instead of a table")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides of --config")


def run(args: argparse.Namespace) -> int:
    """Body of `phijax data decontam`: exit status 0; bad input raises `DecontamError` (exit 2)."""
    from phijax.data.decontam.run import run_command

    return run_command(args)
