"""`curriculum`: greedy accuracy on held-out problems of the embedded arithmetic curriculum.

How PTS + DPO is judged on the curriculum: `count` problems of curriculum `seed` (the same draw as
`phijax pts`: `phijax.data.problems.curriculum_problems`, so pick a seed neither training nor PTS read;
the tiny pretraining reads 0, the tiny PTS config 1) are answered greedily and each response is judged
by the `verifier` plugin PTS used for p(success), so accuracy is the p(success) of the greedy answer
in the reward's own terms.

Prompts: `chat` sends the question as one user turn; `text` sends the curriculum's textbook form
`Exercise. {query}\\n\\nSolution.` as raw text (for pretrained models). Through the `TextPolicy`
protocol only (`policy.generate`), so any backend can be scored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from phijax_plugins.evaluators.base import EvaluatorError, check_capabilities, make_options, summarise

from phijax.plugins.protocols import GENERATE, EvaluationResult, Record, TextPolicy

NAME = "curriculum"


@dataclass(frozen=True)
class CurriculumOptions:
    """The evaluator's options: which problems (`count`, `seed`, `kinds`, `max_digits`), how they are
    asked (`prompt_format`, `max_new_tokens`, `stop`) and judged (`verifier`, `verifier_options`)."""

    count: int = 100
    seed: int = 2
    kinds: tuple[str, ...] = ("addition",)
    max_digits: int | None = None
    prompt_format: str = "chat"
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    verifier: str = "math_answer"
    verifier_options: dict[str, Any] = field(default_factory=dict)


class Curriculum:
    """The `curriculum` evaluator (an `Evaluator`): draws the problems and the verifier when built."""

    requires = frozenset({GENERATE})

    def __init__(self, **options: Any) -> None:
        from phijax.data.config import CurriculumProblemsConfig
        from phijax.data.problems import curriculum_problems
        from phijax.plugins.registry import get_registry

        self.options: CurriculumOptions = make_options(CurriculumOptions, options, NAME)
        _validate(self.options)
        o = self.options
        self.problems = curriculum_problems(
            CurriculumProblemsConfig(count=o.count, seed=o.seed, kinds=o.kinds, max_digits=o.max_digits)
        )
        self.verifier = get_registry().create("verifiers", o.verifier, **o.verifier_options)

    def items(self) -> Iterator[Record]:
        """Each problem as `{id, text}`: the question and its answer."""
        for p in self.problems:
            yield {"id": p["id"], "text": f"{p['query']}\n{p['answer']}"}

    def prompt(self, problem: Record) -> str:
        """The question as the policy receives it (`chat`: the bare question, templated by the policy)."""
        from phijax.data.problems import TEXT_PROMPT

        return problem["query"] if self.options.prompt_format == "chat" else TEXT_PROMPT.format(query=problem["query"])

    def __call__(self, policy: TextPolicy, *, seed: int = 0) -> EvaluationResult:
        """Greedy responses to every problem in one `policy.generate` call, judged by the verifier."""
        check_capabilities(policy, self.requires, NAME)
        o = self.options
        prompts = [self.prompt(p) for p in self.problems]
        responses = policy.generate(
            prompts,
            max_new_tokens=o.max_new_tokens,
            temperature=0.0,
            num_samples=1,
            stop=tuple(o.stop),
            seed=seed,
            chat=o.prompt_format == "chat",
        )
        samples = []
        for problem, prompt, texts in zip(self.problems, prompts, responses):
            correct = float(bool(self.verifier(texts[0], problem)))
            samples.append(
                {
                    "id": problem["id"],
                    "prompt": prompt,
                    "response": texts[0],
                    "target": problem["answer"],
                    "accuracy": correct,
                }
            )
        metrics, stderr = summarise({"accuracy": [s["accuracy"] for s in samples]})
        return EvaluationResult(metrics, stderr, samples)


def _validate(o: CurriculumOptions) -> None:
    from phijax.data.problems import curriculum_issue

    issue = curriculum_issue(o.count, o.kinds, o.max_digits)
    if o.max_new_tokens < 1:
        issue = f"max_new_tokens ({o.max_new_tokens}) must be at least 1"
    if issue:
        raise EvaluatorError(f"evaluator `{NAME}`: {issue}")
    if o.prompt_format not in ("chat", "text"):
        raise EvaluatorError(f"evaluator `{NAME}`: prompt_format {o.prompt_format!r} must be chat or text")
