"""`qa_extraction`: question–answer pairs whose reasoning chain is grounded in the passage.

The model restates chains of deduction found in a passage as `Question / Reasoning / Answer` triples.
A pair is kept when its reasoning is grounded: at least `min_grounding` of the reasoning's content
words (lower-cased words of 4+ letters) occur in the passage, so the chain comes from the text, not
from the model's memory. Kept: `{prompt, answer, reasoning, text, passage_id}`. Rejections: `unparsed`
(no well-formed triple), `ungrounded`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from phijax_plugins.generators.common import Sampling, check_keys, field_of, provenance, templates

from phijax.plugins.protocols import GENERATE
from phijax.synth import rejected

_TRIPLE = re.compile(
    r"Question:\s*(.+?)\s*Reasoning:\s*(.+?)\s*Answer:\s*(.+?)\s*(?=Question:|\Z)", re.DOTALL | re.IGNORECASE
)
_CONTENT = re.compile(r"[a-z]{4,}")


def parse_pairs(text: str) -> list[tuple[str, str, str]]:
    """(question, reasoning, answer) triples in the reply's order."""
    return [(q.strip(), r.strip(), a.strip()) for q, r, a in _TRIPLE.findall(text)]


def grounding(reasoning: str, passage: str) -> float:
    """Share of the reasoning's content words found in the passage (1.0 for a reasoning without any)."""
    words = set(_CONTENT.findall(reasoning.lower()))
    return len(words & set(_CONTENT.findall(passage.lower()))) / len(words) if words else 0.0


class QAExtraction:
    """Options: `max_pairs` per passage, `min_grounding` in [0, 1], `passage_fields`."""

    requires = frozenset({GENERATE})

    def __init__(
        self,
        max_pairs: int = 3,
        min_grounding: float = 0.5,
        passage_fields: list[str] | tuple[str, ...] = ("text", "code"),
        **options: Any,
    ):
        given = options.pop("templates", None)
        check_keys(
            "qa_extraction",
            max_pairs=(max_pairs, max_pairs >= 1, ">= 1"),
            min_grounding=(min_grounding, 0 <= min_grounding <= 1, "in [0, 1]"),
        )
        self.max_pairs, self.min_grounding, self.passage_fields = max_pairs, min_grounding, list(passage_fields)
        self.sampling = Sampling("qa_extraction", **options)
        self.templates = templates(
            "qa_extraction", {"extract": "qa_extract"}, given, {"extract": ("passage", "max_pairs")}
        )

    def __call__(self, seeds: Iterable[dict[str, Any]], *, policy: Any, seed: int) -> Iterator[dict[str, Any]]:
        extract = self.templates["extract"]
        for record in seeds:
            passage = field_of(record, self.passage_fields)
            if passage is None:
                yield rejected("unparsed")
                continue
            reply = self.sampling.ask_one(
                policy, extract.render({"passage": passage, "max_pairs": self.max_pairs}), seed
            )
            pairs = parse_pairs(reply)[: self.max_pairs]
            if not pairs:
                yield rejected("unparsed")
            for i, (question, reasoning, answer) in enumerate(pairs):
                if grounding(reasoning, passage) < self.min_grounding:
                    yield rejected("ungrounded")
                    continue
                yield {
                    "prompt": question,
                    "reasoning": reasoning,
                    "answer": answer,
                    "text": f"Question: {question}\n\n{reasoning}\n\nAnswer: {answer}",
                    "passage_id": record.get("id"),
                    **provenance(extract, sample_index=i),
                }
