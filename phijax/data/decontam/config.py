"""Settings of the decontamination check (`data.decontaminate`, `phijax data decontam`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from phijax.errors import PhijaxError


class DecontamError(PhijaxError):
    """Bad decontamination input: a missing benchmark file, a malformed line, an unknown field."""


@dataclass(frozen=True)
class BenchmarkSpec:
    """One benchmark whose items training text must not contain: JSONL `paths`, or an `evaluator`.

    `{name: gsm8k, paths: [bench/gsm8k.jsonl]}` reads the files; `{evaluator: multiple_choice, file:
    bench/mmlu.jsonl, ...}` (an `evaluators` entry's shape) builds that evaluator with the other keys as
    its options and indexes its `items()`, i.e. exactly the text it evaluates.
    """

    name: str = field(
        default="", metadata={"help": "benchmark name, used in flagged.jsonl and report.json (default: evaluator)"}
    )
    paths: tuple[str, ...] = field(default=(), metadata={"help": "JSONL files of the benchmark (globs; .gz too)"})
    fields: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "fields whose text (strings, lists, nested objects) forms an item, in order; "
            "empty = the known ones present (question, choices, answer, prompt, ...)"
        },
    )
    id_field: str | None = field(
        default=None,
        metadata={"help": "field holding the item id; default: id, task_id, question_id, ... else file:line"},
    )
    evaluator: str | None = field(
        default=None,
        metadata={"help": "registered evaluator whose items() form the benchmark (instead of paths), e.g. exact_match"},
    )
    options: dict[str, Any] = field(
        default_factory=dict,
        hash=False,  # a dict: the spec stays hashable (settings key a cache of indices)
        metadata={"rest": True, "help": "other keys: the evaluator's options (file, limit, ...)"},
    )

    def __post_init__(self) -> None:
        if self.evaluator is None:
            if not self.name:
                raise DecontamError("a decontaminate benchmark has no name: add `name: gsm8k` (or `evaluator: ...`)")
            if self.options:
                raise DecontamError(
                    f"benchmark `{self.name}`: unknown key `{sorted(self.options)[0]}`; valid keys: name, paths, "
                    "fields, id_field, or evaluator and its options"
                )
            return
        if self.paths or self.fields or self.id_field:
            raise DecontamError(
                f"benchmark `{self.name or self.evaluator}` gives both `evaluator` and paths/fields/id_field: "
                "keep one (the evaluator's own option, e.g. `file`, names its items)"
            )
        if not self.name:
            object.__setattr__(self, "name", self.evaluator)  # frozen: the default name, set once


@dataclass(frozen=True)
class DecontamConfig:
    """The Phi-4 hybrid n-gram filter (report appendix B.1); see docs/decontamination.md."""

    benchmarks: tuple[BenchmarkSpec, ...] = field(
        default=(), metadata={"help": "benchmarks to check against: [{name, paths, fields}]"}
    )
    ngram: int = field(
        default=13,
        metadata={"help": "a shared n-gram of this many words (not allow-listed) marks a document contaminated"},
    )
    short_ngram: int = field(
        default=7, metadata={"help": "n of the overlap ratio shared / min(#n-grams of document, #n-grams of item)"}
    )
    contaminated_ratio: float = field(
        default=0.5, metadata={"help": "a ratio above this drops the document (status contaminated, reason 7-gram)"}
    )
    info_ratio: float = field(
        default=0.2, metadata={"help": "a ratio above this (up to contaminated_ratio) is reported as partial; kept"}
    )
    allow_min_items: int = field(
        default=10,
        metadata={"help": "allow-list n-grams found in at least this many benchmark items (boilerplate); 0 = off"},
    )
    allow_reference: tuple[str, ...] = field(
        default=(), metadata={"help": "JSONL reference corpus (globs) whose frequent n-grams are allow-listed"}
    )
    allow_reference_field: str = field(
        default="text", metadata={"help": "field holding the document in allow_reference files"}
    )
    allow_reference_min_count: int = field(
        default=5, metadata={"help": "allow-list benchmark n-grams occurring at least this often in allow_reference"}
    )
    allow_file: str | None = field(
        default=None, metadata={"help": "text file, one phrase a line: its n-grams (both sizes) are allow-listed"}
    )

    def __post_init__(self) -> None:
        if not 1 <= self.short_ngram <= self.ngram:
            raise DecontamError(
                f"decontaminate: need 1 <= short_ngram ({self.short_ngram}) <= ngram "
                f"({self.ngram}); the Phi-4 values are 7 and 13"
            )
        if not 0 <= self.info_ratio <= self.contaminated_ratio <= 1:
            raise DecontamError(
                f"decontaminate: need 0 <= info_ratio ({self.info_ratio}) <= "
                f"contaminated_ratio ({self.contaminated_ratio}) <= 1"
            )

    def settings(self) -> dict[str, Any]:
        """Everything that decides a verdict, as JSON (written into every report)."""
        return asdict(self)


def decontam_config(raw: dict[str, Any] | DecontamConfig) -> DecontamConfig:
    """`DecontamConfig` from a plain mapping (a YAML section); unknown keys are errors."""
    if isinstance(raw, DecontamConfig):
        return raw
    known = set(DecontamConfig.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise DecontamError(f"decontaminate: unknown key `{unknown[0]}`; valid keys: {', '.join(sorted(known))}")
    values = dict(raw)
    values["benchmarks"] = tuple(_benchmark_spec(b, i) for i, b in enumerate(raw.get("benchmarks", ())))
    for key in ("allow_reference",):
        if isinstance(values.get(key), str):
            values[key] = (values[key],)
        elif key in values:
            values[key] = tuple(values[key])
    return DecontamConfig(**values)


def _benchmark_spec(raw: Any, index: int) -> BenchmarkSpec:
    if isinstance(raw, BenchmarkSpec):
        return raw
    if not isinstance(raw, dict) or not ("name" in raw or "evaluator" in raw):
        raise DecontamError(
            f"decontaminate.benchmarks[{index}] must be a mapping with `name` and `paths` (or `evaluator` and "
            f"its options), got {raw!r}"
        )
    known = {"name", "paths", "fields", "id_field", "evaluator"}
    paths = raw.get("paths", ())
    fields_ = raw.get("fields", ())
    return BenchmarkSpec(
        raw.get("name", ""),
        (paths,) if isinstance(paths, str) else tuple(paths),
        (fields_,) if isinstance(fields_, str) else tuple(fields_),
        raw.get("id_field"),
        raw.get("evaluator"),
        {k: v for k, v in raw.items() if k not in known},
    )
