"""Which config root each command reads, and the schema of a root as documented keys.

Each command has its own job root (a frozen dataclass built from shared sections), so a run directory's
config.yaml holds only what that job reads. `phijax config keys [COMMAND]` prints `describe_keys(...)`.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from dataclasses import dataclass
from typing import Any

from phijax.config.loader import _dataclass_of
from phijax.errors import ConfigError

JOB_ROOTS: dict[str, str] = {
    "train": "phijax.train.config:TrainJob",
    "pts": "phijax.pts.config:PTSJob",
    "synth": "phijax.synth.config:SynthJob",
    "eval": "phijax.eval.config:EvalJob",
    "recipe": "phijax.recipe.config:Recipe",
    "generate": "phijax.inference.config:GenerateJob",
}
"""Command → `module:Class` of its job root (imported on demand: a root may live beside its feature)."""


@dataclass(frozen=True)
class KeyDoc:
    """One documented config key: dotted name, type as written, default (as YAML would show it) and help."""

    key: str
    type: str
    default: str
    help: str


def job_root(command: str) -> type:
    """The job root class of `command`; ConfigError naming the commands that have one."""
    if command not in JOB_ROOTS:
        raise ConfigError(f"no config for command `{command}`: choose one of {', '.join(sorted(JOB_ROOTS))}")
    module, _, name = JOB_ROOTS[command].partition(":")
    return getattr(importlib.import_module(module), name)


def describe_keys(root: type, prefix: str = "") -> list[KeyDoc]:
    """Every key of `root`, sections expanded depth-first, with its type, default and description."""
    docs: list[KeyDoc] = []
    hints = typing.get_type_hints(root)
    for f in dataclasses.fields(root):
        dotted = f"{prefix}{f.name}"
        section = _dataclass_of(hints[f.name])
        help_text = f.metadata.get("help") or (_first_line(section.__doc__) if section is not None else "")
        docs.append(KeyDoc(dotted, _type_name(hints[f.name]), _default(f, section), help_text))
        if section is not None:
            docs.extend(describe_keys(section, dotted + "."))
    return docs


def format_keys(docs: list[KeyDoc]) -> str:
    """A plain-text table: key, type, default, description (one line per key)."""
    widths = [max(len(getattr(d, col)) for d in docs) for col in ("key", "type", "default")]
    widths = [min(w, cap) for w, cap in zip(widths, (40, 34, 24), strict=True)]
    lines = []
    for d in docs:
        cells = [_clip(d.key, widths[0]), _clip(d.type, widths[1]), _clip(d.default, widths[2])]
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + "  " + d.help)
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if (doc or "").strip() else ""


def _type_name(hint: Any) -> str:
    """A type as a user writes it in YAML terms: `int`, `str | None`, `xla|cudnn|splash`, `list[str]`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return "|".join(str(a) for a in args)
    if origin is tuple:
        return f"list[{_type_name(args[0])}]"
    if origin in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else _type_name(a) for a in args)
    if origin is dict:
        return f"dict[{_type_name(args[0])}, {_type_name(args[1])}]"
    if hint is Any:
        return "any"
    return hint.__name__ if isinstance(hint, type) else str(hint)


def _default(f: dataclasses.Field, section: type | None) -> str:
    if section is not None:
        return "(section)"
    if f.default is not dataclasses.MISSING:
        return repr(f.default) if f.default is not None else "null"
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        return "{...}" if isinstance(value, dict) and value else repr(value)
    return "(required)"
