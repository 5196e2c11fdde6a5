"""What every native evaluator shares: errors, options, the capability check, benchmark files and their
few-shot pool, field detection, prompt templates, sampling checks and the standard error of a mean.

Few-shot examples are chosen deterministically, so a score never depends on sampling: the first `k`
items of `fewshot_file` when one is given, else the first `k` *other* items of the evaluated file
(the item itself is never its own example). lm-evaluation-harness draws them at random from a
training split instead, so k-shot scores agree with it only where the same examples are used.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from phijax.data.records import read_jsonl
from phijax.errors import PhijaxError

Item = TypeVar("Item")


class EvaluatorError(PhijaxError):
    """Bad evaluator input: options, a benchmark item without what the evaluator reads, a template."""


class MissingCapability(EvaluatorError):
    """The policy lacks a capability the evaluator needs (e.g. log-likelihoods over HTTP)."""


def check_capabilities(policy: Any, requires: Iterable[str], evaluator: str) -> None:
    """Stop before spending anything when `policy.capabilities` lacks one of `requires`."""
    have = frozenset(getattr(policy, "capabilities", ()))
    missing = sorted(set(requires) - have)
    if missing:
        name = getattr(policy, "name", type(policy).__name__)
        raise MissingCapability(
            f"evaluator `{evaluator}` needs the policy capability `{missing[0]}`, which policy {name} lacks "
            f"(it has: {', '.join(sorted(have)) or 'none'}); use a backend that offers it, e.g. `local`"
        )


def read_benchmark(
    path: str, evaluator: str, parse: Callable[[dict[str, Any], str], Item], limit: int | None = None
) -> list[Item]:
    """The items of a benchmark JSONL: `parse(record, "file:line")` per line, the first `limit` kept.

    Errors name `file:line` (through `phijax.data.records.read_jsonl` and `parse`); an empty file is
    an error too, since a score over no items means nothing.
    """
    if limit is not None and limit < 1:
        raise EvaluatorError(f"evaluator `{evaluator}`: limit ({limit}) must be at least 1, or null for all items")
    items = []
    for line_no, record in read_jsonl(path, what=f"`{evaluator}` benchmark file"):
        items.append(parse(record, f"{path}:{line_no}"))
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise EvaluatorError(f"`{evaluator}` benchmark file {path} holds no items: write one JSON object per line")
    return items


def read_items(
    options: Any, evaluator: str, parse: Callable[[dict[str, Any], str], Item]
) -> tuple[list[Item], list[Item]]:
    """(items, few-shot pool) of an evaluator whose options have `file`, `limit`, `fewshot_file`, `shots`.

    The items are the first `limit` of `file`; the pool is all of `fewshot_file`, else the items
    themselves (an item is then never its own example); `shots` is checked against the pool.
    """
    items = read_benchmark(options.file, evaluator, parse, options.limit)
    pool = read_benchmark(options.fewshot_file, evaluator, parse) if options.fewshot_file else items
    check_shots(options.shots, len(pool), evaluator, own_file=options.fewshot_file is None)
    return items, pool


def fields_to_try(chosen: str | None, detected: tuple[str, ...]) -> tuple[str, ...]:
    """The field an option names (e.g. `question_field`), else the usual names to detect it by."""
    return (chosen,) if chosen else detected


def field(record: Mapping[str, Any], names: Sequence[str], where: str, evaluator: str, what: str) -> Any:
    """The first of the fields `names` that `record` has, or a one-line error naming them."""
    for name in names:
        if name in record and record[name] is not None:
            return record[name]
    raise EvaluatorError(
        f"{where}: `{evaluator}` item has no {what} field (looked for {', '.join(names)}; "
        f"it has {', '.join(sorted(record))}); add it or name the field in the evaluator options"
    )


def fill(template: str, values: Mapping[str, Any], where: str, option: str) -> str:
    """`template` with `{name}` placeholders filled from `values`; an unknown name is a one-line error."""
    try:
        return template.format_map(values)
    except KeyError as err:
        raise EvaluatorError(
            f"{where}: {option} placeholder {{{err.args[0]}}} is not known here (known: "
            f"{', '.join(sorted(values))}); fix the {option} option"
        ) from None
    except (IndexError, ValueError) as err:
        raise EvaluatorError(
            f"{option} {template!r} is not a valid template ({err}); write literal braces as {{{{ and }}}}"
        ) from None


def fewshot_examples(pool: Sequence[Item], shots: int, exclude: Item | None = None) -> list[Item]:
    """The first `shots` items of `pool` other than `exclude` (identity), in pool order."""
    return [example for example in pool if example is not exclude][:shots]


def fewshot_prompt(examples: Iterable[str], query: str, separator: str, description: str = "") -> str:
    """`description + (example + separator) * shots + query`: the layout of every k-shot prompt."""
    return description + "".join(example + separator for example in examples) + query


def check_shots(shots: int, pool_size: int, evaluator: str, own_file: bool) -> None:
    """One-line error when `shots` is negative or the pool cannot provide that many examples."""
    available = pool_size - 1 if own_file else pool_size
    if shots < 0 or shots > available:
        source = "the benchmark file (less the item itself)" if own_file else "fewshot_file"
        raise EvaluatorError(
            f"evaluator `{evaluator}`: shots ({shots}) must be between 0 and the {available} "
            f"examples {source} holds; lower shots or give a larger fewshot_file"
        )


def check_sampling(evaluator: str, samples: int, temperature: float, metric: str = "") -> None:
    """One-line error when several `samples` per prompt are asked for greedily (they would all be the
    same); `metric` names what they are for in the message, e.g. " (maj@k)"."""
    if samples > 1 and temperature <= 0:
        raise EvaluatorError(
            f"evaluator `{evaluator}`: samples: {samples}{metric} needs temperature > 0 (e.g. 0.8); "
            "greedy samples are all the same"
        )


def mean_stderr(values: Sequence[float]) -> float | None:
    """Standard error of the mean of `values`: sample standard deviation / sqrt(n) (lm-eval's).

    For 0/1 values of mean p this is sqrt(p (1 - p) / (n - 1)). None when n < 2 (undefined).
    """
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def summarise(per_item: Mapping[str, Sequence[float]]) -> tuple[dict[str, float], dict[str, float]]:
    """(metrics, stderr) from per-item values by metric name: the mean and its standard error."""
    metrics = {name: sum(values) / len(values) for name, values in per_item.items()}
    errors = {name: mean_stderr(values) for name, values in per_item.items()}
    return metrics, {name: e for name, e in errors.items() if e is not None}


@dataclasses.dataclass(frozen=True)
class ItemFileOptions:
    """Options every evaluator over a JSONL item file shares (`read_items`): the file, the few-shot pool
    and its layout. Each evaluator's options dataclass extends it."""

    file: str
    shots: int = 0
    fewshot_file: str | None = None
    limit: int | None = None
    fewshot_separator: str = "\n\n"


def make_options(cls: type, options: Mapping[str, Any], evaluator: str) -> Any:
    """`cls(**options)` (a frozen options dataclass) with one-line errors for unknown or missing options.

    A list given for a tuple-typed option (as YAML writes `stop: [a, b]`) is made a tuple.
    """
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise EvaluatorError(
            f"evaluator `{evaluator}`: unknown option `{unknown[0]}`; known options: {', '.join(known)}"
        )
    required = [
        n for n, f in known.items() if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [n for n in required if n not in options]
    if missing:
        raise EvaluatorError(
            f"evaluator `{evaluator}` needs the option `{missing[0]}` (e.g. `{missing[0]}: "
            f"bench/{evaluator}.jsonl` in its config entry)"
        )
    tuples = _tuple_options(cls)
    return cls(**{k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in options.items()})


def _tuple_options(cls: type) -> set[str]:
    """Names of the options of `cls` typed `tuple[...]` (or `tuple[...] | None`)."""
    hints = typing.get_type_hints(cls)
    return {
        name
        for name, hint in hints.items()
        if typing.get_origin(hint) is tuple or any(typing.get_origin(a) is tuple for a in typing.get_args(hint))
    }


def item_id(record: Mapping[str, Any], where: str) -> str:
    """The item's own id (`id`, `task_id`, `question_id`, `key`), else its `file:line`."""
    for name in ("id", "task_id", "question_id", "key"):
        if record.get(name) is not None:
            return str(record[name])
    return where
