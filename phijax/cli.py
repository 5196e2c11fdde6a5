"""`phijax <command>`: the command-line entry point.

Bad input ends in one line on stderr and exit status 2 (`PhijaxError`); `--debug` shows tracebacks.
Each command lives in the module of its concept; this file only parses arguments and dispatches.
Heavy imports (jax, flax) happen inside the command functions so `phijax --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from phijax.errors import PhijaxError


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as a `PhijaxError` (one line, exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise PhijaxError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="YAML config; repeat to layer files (later wins)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="dotted overrides, e.g. train.steps=30 mesh.fsdp=4")


def _cmd_params(args: argparse.Namespace) -> int:
    from phijax.model.presets import preset_config
    from phijax.model.params import count_parameters, format_counts

    try:
        cfg = preset_config(args.preset)
    except KeyError as err:
        raise PhijaxError(err.args[0]) from None
    print(format_counts(args.preset, count_parameters(cfg)))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from phijax.config import load_config

    cfg = load_config(args.config, args.overrides)  # bad config fails before the heavy imports
    from phijax.train.loop import train

    train(cfg)
    return 0


def _cmd_dpo(args: argparse.Namespace) -> int:
    """`phijax dpo`: `phijax train` with `train.stage=dpo` (preference pairs, see phijax.train.dpo_loop)."""
    args.overrides = [*args.overrides, "train.stage=dpo"]
    return _cmd_train(args)


def _cmd_pts(args: argparse.Namespace) -> int:
    """`phijax pts`: Pivotal Token Search DPO pairs from the `pts` config section (phijax.pts.driver)."""
    from phijax.config import load_config

    cfg = load_config(args.config, args.overrides)
    from phijax.pts.driver import run_pts

    run_pts(cfg)
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from phijax.model import convert

    if args.direction == "from-hf":
        convert.hf_to_checkpoint(args.src, args.dst)
    else:
        convert.checkpoint_to_hf(args.src, args.dst)
    print(f"wrote {args.dst}")
    return 0


def _cmd_data_stats(args: argparse.Namespace) -> int:
    from phijax.config import load_config

    cfg = load_config(args.config, args.overrides)
    from phijax.data.stats import print_stats

    if args.batches < 1:
        raise PhijaxError(f"--batches must be at least 1, got {args.batches}")
    print_stats(cfg, args.batches, args.json)
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from phijax.generate import Sampling, chat_completions

    sampling = Sampling(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    replies = chat_completions(args.checkpoint, args.prompt, tokenizer=args.tokenizer, n=args.n,
                               max_new_tokens=args.max_new_tokens, sampling=sampling, seed=args.seed)
    for i, reply in enumerate(replies):
        print(reply if args.n == 1 else f"--- sample {i + 1} of {args.n} ---\n{reply}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for tests and for plugins that add commands)."""
    parser = _Parser(prog="phijax", description="Phi-4 training recipe in JAX.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("train", help="run a training stage from a config")
    _add_config_args(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("dpo", help="run DPO on preference pairs (train with train.stage=dpo)")
    _add_config_args(p)
    p.set_defaults(func=_cmd_dpo)

    p = sub.add_parser("pts", help="find pivotal tokens in sampled solutions; write single-token DPO pairs")
    _add_config_args(p)
    p.set_defaults(func=_cmd_pts)

    p = sub.add_parser("params", help="print parameter counts of a model preset")
    p.add_argument("--preset", required=True, help="preset name, e.g. phi4-14b")
    p.set_defaults(func=_cmd_params)

    p = sub.add_parser("convert", help="convert between HF Phi3ForCausalLM and phijax checkpoints")
    p.add_argument("direction", choices=["from-hf", "to-hf"])
    p.add_argument("src")
    p.add_argument("dst")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("data", help="inspect the training data pipeline")
    data_sub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", parser_class=_Parser)
    data_sub.required = True
    p = data_sub.add_parser("stats", help="iterate N global batches; report the mixture per source")
    _add_config_args(p)
    p.add_argument("--batches", type=int, default=10, help="global batches to draw (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=_cmd_data_stats)

    p = sub.add_parser("generate", help="sample replies of a checkpoint to a chat prompt")
    p.add_argument("--checkpoint", required=True, help="model dir, checkpoint step, or run dir (newest step)")
    p.add_argument("--prompt", required=True, help="the user message (Phi-4 chat template applied)")
    p.add_argument("--tokenizer", help="tokenizer.json or `phi4` (default: the run's data.tokenizer)")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.7, help="0 = greedy (default 0.7)")
    p.add_argument("--top-k", type=int, default=0, help="0 = off")
    p.add_argument("--top-p", type=float, default=1.0, help="1 = off")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=1, help="number of replies, sampled from one prefill")
    p.set_defaults(func=_cmd_generate)

    # Keep these last: plugin commands may not take the name of a core command added above.
    from phijax.plugins.cli import add_plugin_commands, add_plugins_command

    add_plugins_command(sub)
    add_plugin_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (2 for bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        func: Callable[[argparse.Namespace], int] = args.func
        return func(args)
    except PhijaxError as err:
        if debug:
            raise
        print(f"phijax: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("phijax: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
