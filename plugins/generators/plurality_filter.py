"""`plurality_filter`: keep the questions whose independent answers agree enough, but not all.

Each question is answered `n` times independently; final answers are extracted and normalised
(`phijax.verify.answers`: boxed, `####`, `Answer:` line, last number). The agreement is the share of
the `n` answers equal to the most common one. A question is kept when `min_agreement <= agreement <=
max_agreement`: unanimous answers mean too easy (the default `max_agreement` is just under 1), no
plurality reaching `min_agreement` means too hard or ambiguous. Kept questions are labelled:
`{..., answer: the plurality answer, agreement, answers}`. Rejections: `too_easy`, `too_hard`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from phijax_plugins.generators.common import Sampling, check_keys, field_of, provenance, templates

from phijax.plugins.protocols import GENERATE
from phijax.synth import rejected
from phijax.verify.answers import extract_answer, normalize_answer


def plurality(answers: list[str | None]) -> tuple[str | None, float]:
    """The most common non-empty answer and its share of all answers (ties: the first seen)."""
    counts = Counter(a for a in answers if a)
    if not counts:
        return None, 0.0
    answer, count = max(counts.items(), key=lambda kv: (kv[1], -answers.index(kv[0])))
    return answer, count / len(answers)


class PluralityFilter:
    """Options: `n` answers per question, `min_agreement`, `max_agreement`, `question_fields`."""

    requires = frozenset({GENERATE})

    def __init__(
        self,
        n: int = 8,
        min_agreement: float = 0.5,
        max_agreement: float = 0.99,
        question_fields: list[str] | tuple[str, ...] = ("prompt", "question", "text"),
        **options: Any,
    ):
        given = options.pop("templates", None)
        check_keys(
            "plurality_filter",
            n=(n, n >= 2, ">= 2"),
            band=(
                (min_agreement, max_agreement),
                0 <= min_agreement <= max_agreement <= 1,
                "0 <= min_agreement <= max_agreement <= 1",
            ),
        )
        self.n, self.min_agreement, self.max_agreement = n, min_agreement, max_agreement
        self.question_fields = list(question_fields)
        self.sampling = Sampling("plurality_filter", **{"temperature": 1.0, **options})
        self.templates = templates("plurality_filter", {"answer": "plurality_answer"}, given, {"answer": ("question",)})

    def __call__(self, seeds: Iterable[dict[str, Any]], *, policy: Any, seed: int) -> Iterator[dict[str, Any]]:
        template = self.templates["answer"]
        for record in seeds:
            question = field_of(record, self.question_fields)
            if question is None:
                yield rejected("no_question")
                continue
            replies = self.sampling.ask(policy, [template.render({"question": question})], seed, num_samples=self.n)[0]
            answers = [_final(r) for r in replies]
            label, agreement = plurality(answers)
            if agreement > self.max_agreement:
                yield rejected("too_easy")
            elif label is None or agreement < self.min_agreement:
                yield rejected("too_hard")
            else:
                kept = {k: v for k, v in record.items() if k not in ("id", "provenance")}
                yield {
                    **kept,
                    "prompt": question,
                    "answer": label,
                    "agreement": round(agreement, 4),
                    "answers": answers,
                    **provenance(template),
                }


def _final(reply: str) -> str | None:
    found = extract_answer(reply)
    return normalize_answer(found) if found else None
