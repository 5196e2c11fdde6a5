"""`self_revision`: draft → critique with rubric scores → revision, until every score reaches the threshold.

The model answers the seed's task, then reviews its answer and scores it 1–5 on each `rubric` item
(Phi-4's appendix D rubric: reasoning, factual accuracy, ...); while any score is below `threshold` and
fewer than `max_rounds` critiques were made, it revises against the critique. Kept: `{prompt, text,
scores, rounds}`. Rejections: `rubric_unmet` (still below after `max_rounds`, unless `keep_unmet`),
`unscored` (a critique without every score; kept as unmet with `keep_unmet`), `no_task`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from phijax_plugins.generators.common import Sampling, check_keys, field_of, parse_scores, provenance, templates

from phijax.plugins.protocols import GENERATE
from phijax.synth import rejected


class SelfRevision:
    """Options: `rubric` (score names), `threshold` (1–5), `max_rounds` (critiques at most), `keep_unmet`."""

    requires = frozenset({GENERATE})

    def __init__(
        self,
        rubric: list[str] | tuple[str, ...] = ("reasoning", "factual_accuracy"),
        threshold: float = 4,
        max_rounds: int = 3,
        keep_unmet: bool = False,
        task_fields: list[str] | tuple[str, ...] = ("prompt", "question", "text"),
        **options: Any,
    ):
        given = options.pop("templates", None)
        check_keys(
            "self_revision",
            threshold=(threshold, 1 <= threshold <= 5, "in [1, 5]"),
            max_rounds=(max_rounds, max_rounds >= 1, ">= 1"),
            rubric=(rubric, bool(rubric), "non-empty"),
        )
        self.rubric = [str(r).lower().replace(" ", "_") for r in rubric]
        self.threshold, self.max_rounds, self.keep_unmet = threshold, max_rounds, keep_unmet
        self.task_fields = list(task_fields)
        self.sampling = Sampling("self_revision", **options)
        self.templates = templates(
            "self_revision",
            {"draft": "revision_draft", "critique": "revision_critique", "revise": "revision_revise"},
            given,
            {"draft": ("task",), "critique": ("task", "draft", "rubric"), "revise": ("task", "draft", "critique")},
        )

    def __call__(self, seeds: Iterable[dict[str, Any]], *, policy: Any, seed: int) -> Iterator[dict[str, Any]]:
        for record in seeds:
            task = field_of(record, self.task_fields)
            if task is None:
                yield rejected("no_task")
                continue
            yield self._revise(task, policy, seed)

    def _revise(self, task: str, policy: Any, seed: int) -> dict[str, Any]:
        t = self.templates
        draft = self.sampling.ask_one(policy, t["draft"].render({"task": task}), seed)
        rubric = ", ".join(r.replace("_", " ") for r in self.rubric)
        for round_ in range(1, self.max_rounds + 1):
            critique = self.sampling.ask_one(
                policy,
                t["critique"].render({"task": task, "draft": draft, "rubric": rubric}),
                seed + round_,
                temperature=0.0,
            )
            scores = parse_scores(critique, self.rubric)
            if scores is None and not self.keep_unmet:
                return rejected("unscored")
            if scores is None:
                break
            if min(scores.values()) >= self.threshold:
                return {
                    "prompt": task,
                    "text": draft,
                    "scores": scores,
                    "rounds": round_,
                    **provenance(t["draft"], t["critique"], t["revise"]),
                }
            if round_ == self.max_rounds:
                break
            draft = self.sampling.ask_one(
                policy, t["revise"].render({"task": task, "draft": draft, "critique": critique}), seed + round_
            )
        if self.keep_unmet:
            return {
                "prompt": task,
                "text": draft,
                "scores": scores,
                "rounds": self.max_rounds,
                **provenance(t["draft"], t["critique"], t["revise"]),
            }
        return rejected("rubric_unmet")
