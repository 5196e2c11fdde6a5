"""`phijax <command>`: the command-line entry point.

Bad input ends in one line on stderr and exit status 2 (`PhijaxError`); `--debug` shows tracebacks.
Each command lives in the module of its concept; this file only parses arguments and dispatches.
Heavy imports (jax, flax) happen inside the command functions so `phijax --help` stays fast.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable, Sequence

from phijax.errors import PhijaxError


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as a `PhijaxError` (one line, exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise PhijaxError(f"{message} (see `{self.prog} --help`)")


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", action="append", default=[], metavar="FILE", help="YAML config; repeat to layer files (later wins)"
    )
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. train.steps=30 mesh.fsdp=4"
    )


def _cmd_params(args: argparse.Namespace) -> int:
    from phijax.model.config import preset_config
    from phijax.model.params import count_parameters, format_counts

    try:
        cfg = preset_config(args.preset)
    except KeyError as err:
        raise PhijaxError(err.args[0]) from None
    print(format_counts(args.preset, count_parameters(cfg)))
    return 0


def _need_config(args: argparse.Namespace, command: str, example: str) -> None:
    if not args.config:
        raise PhijaxError(f"phijax {command} needs --config FILE, e.g. --config {example}")


def _cmd_train(args: argparse.Namespace) -> int:
    """`phijax train`: exit 0 when done or preempted (SIGTERM), 130 after a Ctrl-C (saved first)."""
    _need_config(args, args.command, "configs/tiny/pretrain.yaml")
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


def _cmd_pts(args: argparse.Namespace) -> int:
    """`phijax pts`: Pivotal Token Search DPO pairs from a `PTSJob` config (phijax.pts.driver)."""
    from phijax.config import load_job
    from phijax.pts.config import PTSJob

    job = load_job(PTSJob, args.config, args.overrides)
    from phijax.parallel.mesh import request_cpu_devices

    request_cpu_devices(job.mesh.cpu_devices)  # before jax starts: the policy is loaded on the mesh
    from phijax.pts.driver import run_pts

    run_pts(job)
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
    from phijax.train.config import load_train_job

    cfg = load_train_job(args.config, args.overrides)
    from phijax.data.stats import print_stats

    if args.batches < 1:
        raise PhijaxError(f"--batches must be at least 1, got {args.batches}")
    print_stats(cfg, args.batches, args.json)
    return 0


def _cmd_config_keys(args: argparse.Namespace) -> int:
    from phijax.config.jobs import JOB_ROOTS, describe_keys, format_keys, job_root

    roots = {command: job_root(command) for command in ([args.job] if args.job else sorted(JOB_ROOTS))}
    for i, (command, root) in enumerate(roots.items()):
        print(("\n" if i else "") + f"# phijax {command}")
        print(format_keys(describe_keys(root)))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    """`phijax eval`: policies × evaluators → results table, results.json, samples (phijax.eval.run)."""
    from phijax.config import load_job
    from phijax.eval.config import EvalJob

    overrides = [*args.overrides, *(["log_samples=true"] if args.log_samples else [])]
    job = load_job(EvalJob, args.config, overrides)  # bad config fails before the heavy imports
    from phijax.eval.run import evaluate_job

    evaluate_job(job)
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from phijax.inference.policy import load_policy
    from phijax.inference.sampling import sampling_method
    from phijax.parallel.config import MeshConfig

    sampling_method(args.temperature, args.top_k, args.top_p)  # bad settings fail before the model loads
    policy = load_policy(args.checkpoint, tokenizer=args.tokenizer, mesh=MeshConfig())  # fsdp over every device
    step = policy.source.step
    print(f"loaded {policy.source.path}" + ("" if step is None else f" (step {step})"), file=sys.stderr)
    if args.raw:  # a pretrained model: the text as is, ended by <|endoftext|> as well as <|im_end|>
        prompt_ids = [policy.eot_token_id, *policy.encode(args.prompt)]
        stop = tuple(sorted({*policy.stop_tokens, policy.eot_token_id}))
    else:
        prompt_ids, stop = policy.chat_prompt([{"role": "user", "content": args.prompt}]), None
    rows = policy.complete(
        prompt_ids,
        num_samples=args.n,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        **({} if stop is None else {"stop_tokens": stop}),
    )
    for i, reply in enumerate(policy.decode(row) for row in rows):
        print(reply if args.n == 1 else f"--- sample {i + 1} of {args.n} ---\n{reply}")
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    """`phijax synth`: the stages of `synth.stages` (phijax.synth.run); a summary line per stage."""
    from phijax.config.loader import load_job
    from phijax.synth.config import SynthJob

    job = load_job(SynthJob, args.config, args.overrides)
    from phijax.synth.run import run_synth

    run_synth(job)
    return 0


def _cmd_recipe(args: argparse.Namespace) -> int:
    """`phijax recipe`: a recipe's stages in order, each in its run dir; table, recipe.json, recipe.png."""
    from phijax.recipe.run import load_recipe, run_recipe

    run_recipe(load_recipe(args.config, args.overrides), args.redo, only=args.only, dry_run=args.dry_run)
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    """`phijax plot`: loss, learning rate and throughput curves of run dirs in one PNG."""
    from phijax.recipe.plot import runs_figure, save_figure

    print(f"wrote {save_figure(runs_figure(args.run_dirs), args.out)}")
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
    p = data_sub.add_parser("decontam", help="drop training documents that overlap benchmarks (13/7-gram)")
    from phijax.data.decontam import cli as decontam

    decontam.add_arguments(p)
    p.set_defaults(func=decontam.run)

    p = sub.add_parser("config", help="document the config of each command")
    config_sub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND", parser_class=_Parser)
    config_sub.required = True
    p = config_sub.add_parser("keys", help="every config key of a command: type, default, description")
    p.add_argument("job", nargs="?", metavar="COMMAND", help="train, pts, ... (default: all)")
    p.set_defaults(func=_cmd_config_keys)

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
    p.add_argument(
        "--raw", action="store_true", help="no chat template: continue the prompt as plain text (pretrained models)"
    )
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("synth", help="make synthetic data: generator stages over a backend (cached, resumable)")
    _add_config_args(p)
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("eval", help="score policies with evaluators; print a table, write results.json")
    _add_config_args(p)
    p.add_argument("--log-samples", action="store_true", help="also write samples_<evaluator>.jsonl")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("recipe", help="run a whole recipe: stages wired by run dir, resumable, with a summary")
    _add_config_args(p)
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

    # Keep these last: plugin commands may not take the name of a core command added above.
    from phijax.plugins.cli import add_plugin_commands, add_plugins_command

    add_plugins_command(sub)
    add_plugin_commands(sub)
    return parser


_WRITE_ERRORS = (errno.EACCES, errno.EROFS, errno.ENOSPC, errno.EPERM, errno.EDQUOT)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (2 for bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]  # accepted anywhere: `phijax train --debug ...` too
    try:
        args = build_parser().parse_args(argv)
        args.debug = debug
        func: Callable[[argparse.Namespace], int] = args.func
        return func(args)
    except PhijaxError as err:
        if debug:
            raise
        print(f"phijax: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if debug or err.errno not in _WRITE_ERRORS:
            raise
        print(
            f"phijax: error: cannot write {err.filename or 'a file'}: {err.strerror} "
            "(choose a writable directory, or free space)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("phijax: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
