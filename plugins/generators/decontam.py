"""`decontam`: drop records whose text overlaps a benchmark item (the Phi-4 13-gram / 7-gram filter).

The stage that checks synthetic output before it feeds training (docs/decontamination.md): each
record's text goes through `phijax.data.decontam.Decontaminator.check`; a `contaminated` verdict drops
it, anything else (`clean`, or `partial`, which the method reports but keeps) passes through unchanged.
No model is needed. Options: the `data.decontaminate` keys (`benchmarks` — file specs `{name, paths}`
or evaluator specs `{evaluator, file, ...}` — `ngram`, `short_ngram`, `contaminated_ratio`,
`info_ratio`, `allow_*`) and `text_fields`. The benchmark index is built once, when the stage is built.

The text checked is every string of the record (chat `messages` by their contents; `id` and
`provenance` left out) joined by newlines, or only `text_fields` when given.
Rejections: `contaminated_13gram`, `contaminated_7gram`, `missing_field` (none of `text_fields`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from phijax.data.decontam.config import DecontamConfig, decontam_config
from phijax.synth import PROVENANCE, SynthError, rejected

NOT_TEXT = ("id", "provenance", PROVENANCE)  # the runner's bookkeeping, never training text


class Decontam:
    """Options: `text_fields` (null: every string of the record) and the `DecontamConfig` keys."""

    requires: frozenset[str] = frozenset()

    def __init__(self, text_fields: Sequence[str] | None = None, **settings: Any):
        self.text_fields = [text_fields] if isinstance(text_fields, str) else list(text_fields or ())
        self.config: DecontamConfig = decontam_config(settings)
        if not self.config.benchmarks:
            raise SynthError(
                "decontam: no benchmarks to check against; add `benchmarks: [{name: gsm8k, paths: "
                "[bench/gsm8k.jsonl]}]` (or `{evaluator: exact_match, file: ...}`) to the stage"
            )
        from phijax.data.decontam.check import Decontaminator  # numpy and grain load with the stage, not the plugin

        self.decontaminator = Decontaminator(self.config)  # once per stage: every seed shares the index

    def __call__(
        self, seeds: Iterable[dict[str, Any]], *, policy: Any = None, seed: int = 0
    ) -> Iterator[dict[str, Any]]:
        for record in seeds:
            text = self.text_of(record)
            if text is None:
                yield rejected("missing_field")
                continue
            verdict = self.decontaminator.check(text)
            if verdict.dropped:
                yield rejected(f"contaminated_{verdict.reason.replace('-', '')}")  # 13-gram -> contaminated_13gram
            else:
                yield dict(record)

    def text_of(self, record: dict[str, Any]) -> str | None:
        """The record's text as training would read it; None when it has none of `text_fields`."""
        fields = self.text_fields or [k for k in record if k not in NOT_TEXT]
        present = [k for k in fields if record.get(k) is not None]
        if self.text_fields and not present:
            return None
        return "\n".join(part for k in present for part in _field_text(k, record[k]))


def _field_text(key: str, value: Any) -> list[str]:
    """A field's strings; chat messages by their contents only (role names are not text a model reads as such)."""
    from phijax.data.decontam.benchmarks import text_leaves

    if key == "messages" and isinstance(value, list):
        return [m["content"] for m in value if isinstance(m, dict) and isinstance(m.get("content"), str)]
    return text_leaves(value)
