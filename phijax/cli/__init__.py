"""`phijax <command>`: the command-line entry point (argparse only).

Each command group is a module that registers its subcommands (`add_parsers(sub)`) with their handlers:

    train     train, dpo                  pts       pts
    model     params, convert             data      data stats, data decontam
    config    config keys                 generate  generate
    synth     synth                       eval      eval
    recipe    recipe, plot                (phijax.plugins.cli: plugins, and the commands plugins add)

Handlers import jax, flax and the feature they run inside their bodies, so `phijax --help` stays fast
and `import phijax.cli` imports no jax. Bad input ends in one line on stderr and exit status 2
(`PhijaxError`); `--debug`, accepted anywhere on the command line, shows the traceback instead.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable, Sequence

from phijax.cli import config, data, generate, model, pts, recipe, synth, train
from phijax.cli import eval as evaluate
from phijax.cli.arguments import Parser
from phijax.errors import PhijaxError

GROUPS = (train, pts, model, data, config, generate, synth, evaluate, recipe)
"""The command groups, in the order `phijax --help` lists their commands."""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for tests and for plugins that add commands)."""
    parser = Parser(prog="phijax", description="Phi-4 training recipe in JAX.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for group in GROUPS:
        group.add_parsers(sub)
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
