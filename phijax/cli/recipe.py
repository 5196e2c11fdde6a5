"""`phijax recipe` (stages wired by run dir, resumable) and `phijax plot` (curves of run dirs)."""

from __future__ import annotations

import argparse
from typing import Any

from phijax.cli.arguments import add_config_args, need_config


def add_parsers(sub: Any) -> None:
    """Register `recipe` and `plot`."""
    p = sub.add_parser("recipe", help="run a whole recipe: stages wired by run dir, resumable, with a summary")
    add_config_args(p, example="root=runs/my-recipe plot=false")
    p.add_argument(
        "--redo",
        action="append",
        default=[],
        metavar="STAGE",
        help="rerun this finished stage and the stages after it that read from it (repeatable)",
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="STAGE",
        help="run only this stage (repeatable); e.g. the data stages once, before the pod runs the rest",
    )
    p.add_argument("--dry-run", action="store_true", help="print each stage's status and command line; run nothing")
    p.set_defaults(func=_cmd_recipe)

    p = sub.add_parser("plot", help="draw loss, learning-rate and throughput curves of run dirs into a PNG")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (their metrics.jsonl)")
    p.add_argument("--out", default="curves.png", metavar="PNG", help="image to write (default curves.png)")
    p.set_defaults(func=_cmd_plot)


def _cmd_recipe(args: argparse.Namespace) -> int:
    """A recipe's stages in order, each in its run dir; table, recipe.json, recipe.png."""
    need_config(args, "recipe", "configs/tiny/recipe.yaml")
    from phijax.recipe.run import load_recipe, run_recipe

    run_recipe(load_recipe(args.config, args.overrides), args.redo, only=args.only, dry_run=args.dry_run)
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    """Loss, learning rate and throughput curves of run dirs in one PNG."""
    from phijax.recipe.plot import runs_figure, save_figure

    print(f"wrote {save_figure(runs_figure(args.run_dirs), args.out)}")
    return 0
