"""Benchmark items as text: read from JSONL files in the evaluators' formats.

An item's text is the values of the spec's `fields`, in order, joined by spaces (lists and nested
objects are flattened: ARC's `choices: {text: [...], label: [...]}` reads as its strings). Without
`fields`, the known fields present in the first row are used (`KNOWN_FIELDS`): MMLU/ARC
(`question`, `choices`, `answer`), GSM8K (`question`, `answer`), HumanEval (`prompt`,
`canonical_solution`, `test`), IFEval (`prompt`). A spec naming an `evaluator` instead builds it
through the plugin registry and takes its `items()` (`{id, text}` records: all the text of each item
it evaluates), so the index holds exactly what is evaluated.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from phijax.data.decontam.config import BenchmarkSpec, DecontamError
from phijax.data.records import DataError, expand_paths, read_jsonl
from phijax.errors import PhijaxError

KNOWN_FIELDS = (  # in the order their text is joined
    *("question", "query", "problem", "prompt", "instruction", "input", "sentence", "goal", "ctx", "context"),
    *("passage", "choices", "options", "endings", "option1", "option2", "sol1", "sol2", "answer", "solution"),
    *("canonical_solution", "test", "text", "turns"),
)
ID_FIELDS = ("id", "task_id", "question_id", "qid", "key", "idx")


@dataclass(frozen=True)
class BenchmarkItem:
    """One benchmark item: `benchmark` name, `item_id` (its id field, or `file:line`) and `text`."""

    benchmark: str
    item_id: str
    text: str


def read_items(spec: BenchmarkSpec) -> Iterator[BenchmarkItem]:
    """The items of one benchmark spec; `DecontamError` names the file:line and the fix."""
    if spec.evaluator is not None:
        yield from evaluator_items(spec)
        return
    if not spec.paths:
        raise DecontamError(f"benchmark `{spec.name}` has no paths: add `paths: [bench/{spec.name}.jsonl]`")
    try:
        files = expand_paths(spec.paths, spec.name)
    except DataError as err:
        raise DecontamError(f"benchmark `{spec.name}`: {err}".replace("data.sources", "its benchmark paths")) from None
    fields = spec.fields
    for path in files:
        try:
            for line, obj in read_jsonl(path, what=f"benchmark `{spec.name}` file"):
                where = f"{path}:{line}"
                fields = fields or _detect_fields(obj, where, spec.name)
                yield BenchmarkItem(spec.name, _item_id(obj, spec, where), _item_text(obj, fields, where, spec.name))
        except DataError as err:
            raise DecontamError(str(err)) from None


def evaluator_items(spec: BenchmarkSpec) -> Iterator[BenchmarkItem]:
    """The `items()` of the evaluator `spec` names, built with `spec.options` through the plugin registry."""
    from phijax.plugins.registry import get_registry

    registry = get_registry()
    try:
        evaluator = registry.create("evaluators", spec.evaluator, **spec.options)
        with registry.attributed("evaluators", spec.evaluator):
            records = list(evaluator.items())
    except PhijaxError as err:
        raise DecontamError(f"benchmark `{spec.name}`: {err}") from None
    for number, record in enumerate(records, 1):
        if not isinstance(record, Mapping) or "id" not in record or not isinstance(record.get("text"), str):
            raise DecontamError(
                f"benchmark `{spec.name}`: item {number} of evaluator `{spec.evaluator}` is not a record with "
                f"`id` and string `text` (got {str(record)[:80]}); fix the evaluator's items()"
            )
        yield BenchmarkItem(spec.name, str(record["id"]), record["text"])


def _detect_fields(obj: dict[str, Any], where: str, name: str) -> tuple[str, ...]:
    fields = tuple(f for f in KNOWN_FIELDS if f in obj)
    if not fields:
        raise DecontamError(
            f"{where}: benchmark `{name}` has none of the known text fields (it has "
            f"{', '.join(sorted(obj))}); name them with `fields: [...]` in its spec"
        )
    return fields


def _item_id(obj: dict[str, Any], spec: BenchmarkSpec, where: str) -> str:
    if spec.id_field is not None:
        if spec.id_field not in obj:
            raise DecontamError(
                f"{where}: benchmark `{spec.name}` item has no id field `{spec.id_field}`; "
                "fix `id_field` in its spec or leave it out"
            )
        return str(obj[spec.id_field])
    key = next((f for f in ID_FIELDS if f in obj), None)
    return str(obj[key]) if key is not None else where


def _item_text(obj: dict[str, Any], fields: tuple[str, ...], where: str, name: str) -> str:
    parts = []
    for f in fields:
        if f not in obj:
            raise DecontamError(
                f"{where}: benchmark `{name}` item has no field `{f}` (it has "
                f"{', '.join(sorted(obj))}); fix `fields` in its spec"
            )
        parts.extend(text_leaves(obj[f]))
    return " ".join(parts)


def text_leaves(value: Any) -> list[str]:
    """The text leaves of a field value, in order (numbers too: GSM8K answers, labels)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in text_leaves(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in text_leaves(v)]
    return [str(value)]
