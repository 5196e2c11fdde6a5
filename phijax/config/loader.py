"""Loading any command's config: YAML files plus dotted overrides, checked against a root dataclass.

A command's config is one frozen dataclass (its *job root*, e.g. the training job), built from any number
of YAML files (later files override earlier ones, key by key) and then `section.key=value` overrides
from the command line, whose values are parsed as YAML (`train.steps=30`,
`data.sources=[{name: a, source: jsonl, paths: [x]}]`). Every key is checked against the root's
schema; an unknown key, a value of the wrong type or a missing required value raises `ConfigError` with
one line that names the key, where it came from, and the closest valid key. Each field's description
lives in its `metadata["help"]`; `phijax config keys` prints them.

Paths are kept as written: a relative one (in a YAML file, an override or a flag) is relative to the
working directory of the command, for every key, never to the YAML file naming it. A message about a
relative path that was not found says so with `relative_note`.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from phijax.errors import ConfigError

COMMAND_LINE = "command line"


# ------------------------------------------------------------------------------------- loading
def key(default: Any, help: str) -> Any:
    """A config field with an immutable default and its one-line description (`phijax config keys`)."""
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        raise TypeError("mutable defaults need section() or a tuple")
    return dataclasses.field(default=default, metadata={"help": help})


def section(cls: type, help: str) -> Any:
    """A config field holding a nested section `cls`, built with its defaults, and its description."""
    return dataclasses.field(default_factory=cls, metadata={"help": help})


def load_job(root: type, files: Sequence[str | Path] = (), overrides: Sequence[str] = ()) -> Any:
    """Build the job `root` (a frozen dataclass) from YAML files (later wins) and overrides (last wins)."""
    raw: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for path in files:
        _merge(raw, _read_yaml(Path(path)), str(path), origins)
    for text in overrides:
        key, value = parse_override(text)
        _merge(raw, _nest(key, value), COMMAND_LINE, origins)
    return config_from_dict(raw, origins, root=root)


def config_from_dict(raw: Mapping[str, Any], origins: Mapping[str, str] | None = None, *, root: type) -> Any:
    """Validate a nested dict against the job root `root`; `origins` maps dotted keys to where they came from."""
    return _build(root, raw, "", origins or {}, root)


def build_section(cls: type, raw: Mapping[str, Any], prefix: str) -> Any:
    """One section (e.g. `ModelConfig` from a `model:` mapping read from a checkpoint), checked like a config."""
    return _build(cls, raw, prefix + ".", {}, cls)


def parse_override(text: str) -> tuple[str, Any]:
    """Split `a.b=value` into (`a.b`, YAML-parsed value)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part.isidentifier() for part in key.split(".")):
        raise ConfigError(f"bad override {text!r}: write overrides as key.sub=value, for example train.steps=30")
    try:
        return key, yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as err:
        reason = str(err).splitlines()[0]
        raise ConfigError(f"override {key}: value {value!r} is not valid YAML ({reason})") from None


def to_dict(cfg: Any) -> Any:
    """The config as plain YAML-able data (tuples become lists; rest-fields are inlined)."""
    if dataclasses.is_dataclass(cfg):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(cfg):
            value = to_dict(getattr(cfg, f.name))
            if f.metadata.get("rest"):
                out.update(value)
            else:
                out[f.name] = value
        return out
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


def dump_config(cfg: Any) -> str:
    """The resolved config as YAML text, loadable again with `load_job`."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def write_config(cfg: Any, run_dir: str | Path) -> Path:
    """Write the resolved config to `run_dir/config.yaml` and return its path."""
    path = Path(run_dir) / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_config(cfg))
    return path


def relative_note(path: str | Path) -> str:
    """` (relative to <working directory>)` for a relative `path`, "" for an absolute one (`~` counts as
    absolute): what every message about a path that was not found adds, so it says where it looked."""
    return "" if Path(os.path.expanduser(str(path))).is_absolute() else f" (relative to {Path.cwd()})"


def valid_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key the schema of `cls` accepts, nested dataclasses expanded."""
    keys = []
    for f in dataclasses.fields(cls):
        dotted = f"{prefix}{f.name}"
        hint = typing.get_type_hints(cls)[f.name]
        keys.append(dotted)
        inner = _dataclass_of(hint)
        if inner is not None:
            keys.extend(valid_keys(inner, dotted + "."))
    return keys


def _dataclass_of(hint: Any) -> type | None:
    """The dataclass a field holds: `X` or `X | None`; None for anything else."""
    if dataclasses.is_dataclass(hint):
        return hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(inner) == 1 and dataclasses.is_dataclass(inner[0]):
            return inner[0]
    return None


# ------------------------------------------------------------------------------------ internals
def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} not found{relative_note(path)}: pass an existing YAML file to --config")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"config file {where} is not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, not {type(data).__name__}")
    return data


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out


def _merge(dst: dict[str, Any], src: Mapping[str, Any], origin: str, origins: dict[str, str], prefix: str = "") -> None:
    for key, value in src.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(dst.get(key), dict):
            _merge(dst[key], value, origin, origins, dotted + ".")
        else:
            dst[key] = _copy(value)
            _record(value, dotted, origin, origins)


def _record(value: Any, dotted: str, origin: str, origins: dict[str, str]) -> None:
    origins[dotted] = origin
    if isinstance(value, Mapping):
        for k, v in value.items():
            _record(v, f"{dotted}.{k}", origin, origins)


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _origin(dotted: str, origins: Mapping[str, str]) -> str:
    probe = dotted
    while probe:
        if probe in origins:
            return origins[probe]
        parent = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", probe)
        if parent == probe:
            break
        probe = parent
    return "defaults"


def _build(cls: type, raw: Any, prefix: str, origins: Mapping[str, str], root: type) -> Any:
    where = prefix.rstrip(".") or "the config"
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{where} (from {_origin(prefix.rstrip('.'), origins)}) must be a mapping of keys, got {_describe(raw)}"
        )
    raw = _expand(cls, raw, prefix, origins)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    rest_field = next((f for f in fields.values() if f.metadata.get("rest")), None)
    kwargs: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if key in fields and fields[key] is not rest_field:
            kwargs[key] = _coerce(hints[key], value, dotted, origins, root)
        elif rest_field is not None:
            rest[key] = value
        else:
            raise ConfigError(_unknown_key_message(str(dotted), origins, root))
    if rest_field is not None:
        kwargs[rest_field.name] = rest
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(
            f"{prefix}{missing[0]} is required (in {where}, from {_origin(prefix.rstrip('.'), origins)}): "
            f"add `{missing[0]}: ...` there"
        )
    return cls(**kwargs)


def _expand(cls: type, raw: Mapping[str, Any], prefix: str, origins: Mapping[str, str]) -> Mapping[str, Any]:
    """A section may fill in its raw keys before checking (`ModelConfig.expand_preset`: a preset's values)."""
    expand = getattr(cls, "expand_preset", None)
    if expand is None:
        return raw
    try:
        return expand(raw)
    except KeyError as err:
        raise ConfigError(f"{err.args[0]} (from {_origin(prefix + 'preset', origins)})") from None


def _unknown_key_message(dotted: str, origins: Mapping[str, str], root: type) -> str:
    generic = re.sub(r"\[\d+\]", "", dotted)
    candidates = valid_keys(root)
    close = difflib.get_close_matches(generic, candidates, n=1, cutoff=0.6)
    if not close:
        section = generic.rpartition(".")[0]
        siblings = [k for k in candidates if k.rpartition(".")[0] == section]
        close = difflib.get_close_matches(generic, siblings, n=1, cutoff=0.0)
    hint = f"; did you mean `{close[0]}`?" if close else ""
    return f"unknown config key `{dotted}` (from {_origin(dotted, origins)}){hint}"


def _coerce(hint: Any, value: Any, dotted: str, origins: Mapping[str, str], root: type) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, dotted + ".", origins, root)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, dotted, origins, root)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise _type_error(dotted, origins, f"one of {choices}", value)
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _type_error(dotted, origins, "a list", value)
        return tuple(_coerce(args[0], v, f"{dotted}[{i}]", origins, root) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise _type_error(dotted, origins, "a mapping", value)
        return {str(k): _coerce(args[1], v, f"{dotted}.{k}", origins, root) for k, v in value.items()}
    return _coerce_scalar(hint, value, dotted, origins)


def _coerce_scalar(hint: type, value: Any, dotted: str, origins: Mapping[str, str]) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"unsupported config type {hint!r} at {dotted}")
    article = "an" if hint.__name__[0] in "aeiou" else "a"
    raise _type_error(dotted, origins, f"{article} {hint.__name__}", value)


def _type_error(dotted: str, origins: Mapping[str, str], expected: str, value: Any) -> ConfigError:
    return ConfigError(
        f"config key `{dotted}` (from {_origin(dotted, origins)}) must be {expected}, got {_describe(value)}"
    )


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"
